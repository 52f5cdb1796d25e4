"""What svs-verl adds to every ``import verl`` (every Ray worker of every run pays it, SvS or not).

    python benchmarks/import_cost.py --runs 3

Times ``import verl`` in fresh interpreters, alternating with the plugin (``VERL_USE_EXTERNAL_PLUGINS=auto``,
verl's default) and without it (``=none``), and counts the modules loaded; prints both side by side, the
difference and the ratio. With the plugin, registration is checked to have happened (the CPU platform in
verl's ``PlatformRegistry``; the SvS trainer and reward manager registered once verl's trainer / reward
packages load).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

PROBE = r"""
import json, sys, time
t = time.perf_counter()
import verl
dt = time.perf_counter() - t
out = {"seconds": dt, "modules": len(sys.modules)}
if "svs_verl.verl_plugin.register" in sys.modules:
    from verl.plugin.platform import PlatformRegistry
    from svs_verl.verl_plugin import register, hooks
    out["platform_registered"] = PlatformRegistry.get("cpu") is not None
    out["awaiting"] = sorted(hooks.pending())
    out["errors"] = register.ERRORS
print(json.dumps(out))
"""


def one(policy: str) -> dict:
    env = {**os.environ, "VERL_USE_EXTERNAL_PLUGINS": policy}
    env.pop("VERL_PLATFORM", None)
    out = subprocess.run([sys.executable, "-P", "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        sys.exit(f"import verl failed with VERL_USE_EXTERNAL_PLUGINS={policy}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="fresh interpreters per variant (alternating)")
    args = ap.parse_args()
    results: dict[str, list[dict]] = {"none": [], "auto": []}
    for _ in range(args.runs):
        for policy in ("none", "auto"):
            results[policy].append(one(policy))
    plugin = results["auto"][-1]
    if not plugin.get("platform_registered") or plugin.get("errors"):
        sys.exit(f"the plugin did not register: {plugin}")
    t_none = statistics.median(r["seconds"] for r in results["none"])
    t_auto = statistics.median(r["seconds"] for r in results["auto"])
    m_none, m_auto = results["none"][-1]["modules"], results["auto"][-1]["modules"]
    print(f"{'':24} {'without svs-verl':>17} {'with svs-verl':>14}")
    print(f"{'import verl (median s)':24} {t_none:>17.2f} {t_auto:>14.2f}   runs: "
          f"{[round(r['seconds'], 2) for r in results['none']]} vs {[round(r['seconds'], 2) for r in results['auto']]}")
    print(f"{'modules loaded':24} {m_none:>17} {m_auto:>14}")
    print(f"plugin adds {t_auto - t_none:+.2f} s (ratio {t_auto / t_none:.3f}) and {m_auto - m_none:+d} modules; "
          f"registrations waiting for their verl modules: {plugin['awaiting']}")


if __name__ == "__main__":
    main()
