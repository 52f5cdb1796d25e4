import json
import subprocess
import sys


def test_core_imports_neither_verl_nor_torch():
    code = ("import sys, json; import svs_verl.core, svs_verl.core.round; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('verl', 'torch', 'ray', 'transformers', 'vllm', 'numpy'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []
