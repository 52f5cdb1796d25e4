"""``svs-verl preview``: one SvS synthesis round with a real model, no training (CPU or GPU).

    svs-verl preview                                   # embedded SmolLM2-135M, embedded data, quickstart config
    svs-verl preview --model DIR --data train.parquet --config svs_dapo --problems 16
    svs-verl preview --template my_template.yaml --json round.json

How a user checks a synthesis template and a model before spending GPU hours. It takes the SvS settings
from a run config (``--config``: a name in ``svs-verl configs`` or a YAML file, plus ``--set key=value``
overrides, composed exactly as ``main_ppo`` composes them) and runs what one training step runs, with the
real ``svs_verl.core`` code and the real verifier:

1. samples ``actor_rollout_ref.rollout.n`` solutions for each of N problems and verifies them;
2. ``SvsRound.add_original``: problems in the underperforming band give seeds -> synthesis prompts;
3. samples ``svs.synthesis_n`` syntheses per seed; ``add_syntheses`` parses and guards them;
4. samples ``svs.solve_n`` solutions per accepted problem (``svs.solve_template``), verified against the
   ORIGINAL reference answer; ``add_solves``; then ``plan()`` gives rewards and the update groups.

It prints the originals, every synthesis with its verdict, solve accuracy and reward, and a summary.
Generation uses ``svs_verl.evaluation.generate`` (vLLM on a CUDA GPU, else transformers).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .argtypes import short

CPU_MAX_TOKENS = 64


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def load_settings(config: str, overrides: list[str]) -> dict[str, Any]:
    """The parts of a run config that one SvS round needs, composed as ``main_ppo`` composes them."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from .quickstart import configs_dir

    path = Path(config)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise SystemExit(f"svs-verl preview: config file {path} does not exist")
        config_dir, name = path.resolve().parent, path.stem
    else:
        config_dir, name = configs_dir(), config
        if not (config_dir / f"{name}.yaml").is_file():
            known = sorted(p.stem for p in config_dir.glob("*.yaml"))
            raise SystemExit(f"svs-verl preview: no config {short(name)}; built-in configs: {known}")
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            cfg = compose(config_name=name, overrides=overrides)
    except Exception as exc:  # hydra's errors name the bad key or file
        raise SystemExit(f"svs-verl preview: cannot compose {config}: {' '.join(str(exc).split())[:400]}") from None
    if "svs" not in cfg:
        raise SystemExit(f"svs-verl preview: config {config} has no svs: section (use quickstart or svs_dapo)")
    try:
        extraction = OmegaConf.select(cfg, "reward.reward_kwargs.answer_extraction", default="auto")
        if OmegaConf.is_config(extraction):
            extraction = OmegaConf.to_container(extraction, resolve=True)
        svs = OmegaConf.to_container(cfg.svs, resolve=True)
    except Exception as exc:  # an interpolation that does not resolve names its key
        raise SystemExit(f"svs-verl preview: {config}: {' '.join(str(exc).split())[:300]}") from None
    return {
        "svs": svs,
        "n": _setting(cfg, "actor_rollout_ref.rollout.n", int, 1),
        "temperature": _setting(cfg, "actor_rollout_ref.rollout.temperature", float, 0.0),
        "top_p": _setting(cfg, "actor_rollout_ref.rollout.top_p", float, 0.0, 1.0, default=1.0, open_low=True),
        "max_tokens": _setting(cfg, "data.max_response_length", int, 1),
        "extraction": extraction if isinstance(extraction, dict) else {"default": extraction},
    }


def _setting(cfg, key: str, kind: type, low: float, high: float = float("inf"), default: Any = None,
             open_low: bool = False) -> Any:
    """One number of the composed config, checked: a value that is not one names its key (``--set
    actor_rollout_ref.rollout.n=abc`` gave "invalid literal for int()" before)."""
    from omegaconf import OmegaConf

    try:
        value = OmegaConf.select(cfg, key, default=default, throw_on_missing=True)
    except Exception as exc:
        raise SystemExit(f"svs-verl preview: {key}: {' '.join(str(exc).split())[:200]}") from None
    what = "an integer" if kind is int else "a number"
    if isinstance(value, bool) or value is None:
        raise SystemExit(f"svs-verl preview: {key} = {short(value)}: expected {what}")
    try:
        number = kind(value) if not isinstance(value, str) or kind is float else int(value.strip())
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise SystemExit(f"svs-verl preview: {key} = {short(value)}: expected {what}") from None
    ok = number == number and (number > low if open_low else number >= low) and number <= high
    if not ok or (kind is float and number in (float("inf"), float("-inf"))):
        bound = f"{'>' if open_low else '>='} {low:g}" + (f" and <= {high:g}" if high != float("inf") else "")
        raise SystemExit(f"svs-verl preview: {key} = {short(value)}: expected {what} {bound}")
    return number


def load_problems(path: Path, limit: int) -> list:
    """The first ``limit`` usable rows of a verl-format file, read by the evaluation's loader
    (``svs_verl.evaluation.run.Problem``: messages, answer, bare problem text, data_source, row)."""
    from .evaluation.run import load_benchmarks

    benches = load_benchmarks([Path(path)])
    problems = sorted((p for b in benches for p in b.problems), key=lambda p: p.row)[:limit]
    if not problems:
        raise SystemExit(f"svs-verl preview: no usable rows in {path}")
    bad = sorted((r for b in benches for r in b.bad_rows if r["row"] < problems[-1].row), key=lambda r: r["row"])
    if bad:
        shown = ", ".join(f"row {r['row']} ({r['reason']})" for r in bad[:10])
        print(f"svs-verl preview: skipped {len(bad)} bad row(s) of {path}: {shown}{' ...' if len(bad) > 10 else ''}",
              file=sys.stderr)
    return problems


def _clip(text: Any, width: int) -> str:
    s = " ".join(str(text).split()) if text is not None else "-"
    return s if len(s) <= width else s[: width - 1] + "…"


def _progress(label: str, total: int):
    from .evaluation.run import ProgressLine

    bar = ProgressLine(label, total, sys.stderr, prefix="preview")
    return lambda done, _total: bar.update(done)


def run_round(generator, problems: list[dict], settings: dict, seed: int) -> dict[str, Any]:
    """One SvS round with the real core code; returns originals, the plan's records and metrics."""
    from .core import SvsRound, SvsSettings
    from .core.config import SAMPLER_KEYS
    from .evaluation.run import extract_mode
    from .verify import verify_batch

    svs = SvsSettings.from_mapping({k: v for k, v in settings["svs"].items() if k not in SAMPLER_KEYS})
    rnd = SvsRound(svs)
    gen = {"temperature": settings["temperature"], "top_p": settings["top_p"], "max_tokens": settings["max_tokens"]}

    def verify(texts: list[str], answer: str, source: str) -> list[bool]:
        mode = extract_mode(settings["extraction"], source, source)
        return [v.correct for v in verify_batch(texts, [answer] * len(texts), extract=mode)]

    n = settings["n"]
    print(f"[1/3] solving {len(problems)} problems x {n} samples ({generator.name})", file=sys.stderr)
    outs = generator.generate([p.messages for p in problems], n, seed=seed,
                              progress=_progress("solutions", len(problems) * n), **gen)
    originals, synthesis_tasks = [], []
    for i, (p, samples) in enumerate(zip(problems, outs)):
        texts = [s.text for s in samples]
        correct = verify(texts, p.answer, p.data_source)
        tasks = rnd.add_original(f"p{i}", p.problem, p.answer, texts, correct)
        synthesis_tasks += [(t, p.data_source) for t in tasks]
        originals.append({"uid": f"p{i}", "row": p.row, "problem": p.problem, "ground_truth": p.answer,
                          "correct": sum(correct), "n": len(correct), "seeds": len(tasks),
                          "in_band": svs.underperforming().contains(sum(correct), len(correct))})

    solve_tasks = []
    if synthesis_tasks:
        print(f"[2/3] synthesizing: {len(synthesis_tasks)} seeds x {svs.synthesis_n} samples "
              f"(template {rnd.template.name})", file=sys.stderr)
        outs = generator.generate([t.messages for t, _ in synthesis_tasks], svs.synthesis_n, seed=seed + 1,
                                  progress=_progress("syntheses", len(synthesis_tasks) * svs.synthesis_n), **gen)
        for (task, source), samples in zip(synthesis_tasks, outs):
            solve_tasks += [(t, source) for t in rnd.add_syntheses(task.uid, [s.text for s in samples])]
    else:
        print("[2/3] no problem in the underperforming band: nothing to synthesize", file=sys.stderr)
    if solve_tasks:
        print(f"[3/3] solving {len(solve_tasks)} variational problems x {svs.solve_n} samples", file=sys.stderr)
        prompts = [[{"role": "user", "content": svs.solve_template.replace("{problem}", t.problem)}]
                   for t, _ in solve_tasks]
        outs = generator.generate(prompts, svs.solve_n, seed=seed + 2,
                                  progress=_progress("variational solves", len(prompts) * svs.solve_n), **gen)
        for (task, source), samples in zip(solve_tasks, outs):
            rnd.add_solves(task.uid, verify([s.text for s in samples], task.ground_truth, source))
    else:
        print("[3/3] no accepted variational problem: nothing to solve", file=sys.stderr)
    plan = rnd.plan()
    return {"originals": originals, "records": plan.records, "metrics": plan.metrics,
            "update": {"oqa": plan.originals, "vps": list(plan.syntheses), "spa": plan.solves},
            "settings": {k: v for k, v in settings.items()}, "template": rnd.template.name}


def render(result: dict[str, Any], width: int = 60) -> str:
    lines = ["", "== original problems (underperforming band -> seeds)",
             f"{'#':>3}  {'correct':>7}  {'band':4}  {'seeds':>5}  {'answer':>8}  problem"]
    for o in result["originals"]:
        lines.append(f"{o['uid']:>3}  {o['correct']:>3}/{o['n']:<3}  {'yes' if o['in_band'] else 'no':4}  "
                     f"{o['seeds']:>5}  {_clip(o['ground_truth'], 8):>8}  {_clip(o['problem'], width)}")
    lines += ["", f"== syntheses (template {result['template']}): verdict, parsed problem, solve accuracy, reward",
              "   seed pK-synJ: made from sample J (0-based) of original problem pK, a correct solution shown as the "
              "seed; #: synthesis sample",
              "   solved: share of the variational problem's solutions whose answer equals the ORIGINAL problem's "
              "reference answer (a synthesis has no answer of its own)",
              f"{'seed':<10} {'#':>2}  {'verdict':<22} {'solved':>6}  {'reward':>6}  problem (or raw output)"]
    for r in result["records"]:
        acc = "-" if r["solve_accuracy"] is None else f"{r['solve_accuracy']:.2f}"
        reward = "-" if r["reward"] is None else str(r["reward"])
        shown = r["problem"] if r["problem"] is not None else f"[{_clip(r['synthesis'], width - 2)}]"
        lines.append(f"{r['synthesis_uid']:<10} {r['sample_index']:>2}  {r['verdict']:<22} {acc:>6}  {reward:>6}  "
                     f"{_clip(shown, width)}")
    m = result["metrics"]
    rejects = Counter({k.split("/", 2)[2]: int(v) for k, v in m.items() if k.startswith("svs/reject/")})
    syn = int(m.get("svs/syntheses", 0))
    lines += ["", "== summary",
              f"problems {len(result['originals'])}, in the underperforming band "
              f"{sum(o['in_band'] for o in result['originals'])}, original accuracy {m.get('svs/oqa/acc_mean', 0):.3f}",
              f"seeds {int(m.get('svs/seeds', 0))}, syntheses {syn}, accepted {int(m.get('svs/accepted', 0))} "
              f"({m.get('svs/valid_ratio', 0):.1%})",
              "rejections: " + (", ".join(f"{k} {v}" for k, v in rejects.most_common()) or "none"),
              f"variational solve accuracy {m.get('svs/spa/acc_mean', 0):.3f}; synthesis reward mean "
              f"{m.get('svs/vps/reward_mean', 0):.3f} "
              f"({sum(1 for r in result['records'] if r['reward'] == 1)} syntheses earned 1)",
              f"groups a training step would update on: original {len(result['update']['oqa'])}, "
              f"synthesis {len(result['update']['vps'])}, variational solve {len(result['update']['spa'])}"]
    return "\n".join(lines)


def check_settings(settings: dict[str, Any]) -> None:
    """The round's SvS settings and template as the trainer reads them (before any model loads)."""
    from .argtypes import load_template
    from .core import SvsSettings
    from .core.config import SAMPLER_KEYS

    try:
        svs = SvsSettings.from_mapping({k: v for k, v in settings["svs"].items() if k not in SAMPLER_KEYS})
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"svs-verl preview: {exc}") from None
    try:
        load_template(svs.template)
    except ValueError as exc:
        raise SystemExit(f"svs-verl preview: {exc}") from None


def _quiet_imports() -> None:
    """verl's optional engines and vLLM's platform probes warn at import; none of it concerns a preview."""
    import logging
    import os
    import warnings

    warnings.filterwarnings("ignore", message=r".* engine is not available")
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("svs-verl").setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()   # "Loading weights ...": the preview's own progress lines say enough
    hf_logging.set_verbosity_error()


def run(args) -> int:
    _quiet_imports()
    from .evaluation.generate import load_generator

    t0 = time.time()
    if args.json and Path(args.json).is_dir():
        raise SystemExit(f"svs-verl preview: --json {args.json} is a directory; give a file name")
    if args.backend == "vllm":
        from .evaluation.generate import vllm_unusable_reason

        if vllm_unusable_reason():
            raise SystemExit(f"svs-verl preview: --backend vllm: {vllm_unusable_reason()}; use --backend "
                             f"transformers (or auto)")
    settings = load_settings(args.config, args.set)
    if args.template:
        settings["svs"]["template"] = args.template
    if args.max_tokens:
        settings["max_tokens"] = args.max_tokens
    elif not _cuda() and settings["max_tokens"] > CPU_MAX_TOKENS:
        # a CPU decodes a 32-row batch of a 135M model at ~0.2-0.4 s per token: keep the default round short
        print(f"svs-verl preview: no CUDA GPU, samples capped at {CPU_MAX_TOKENS} tokens (the config allows "
              f"{settings['max_tokens']}; --max-tokens sets it)", file=sys.stderr)
        settings["max_tokens"] = CPU_MAX_TOKENS
    for key in ("n", "synthesis_n", "solve_n"):
        value = getattr(args, key)
        if value is not None:
            (settings if key == "n" else settings["svs"])[key] = value
    check_settings(settings)
    if args.model is not None and not (Path(args.model) / "config.json").is_file():
        raise SystemExit(f"svs-verl preview: --model {args.model}: "
                         + ("no such directory" if not Path(args.model).exists() else
                            "not a Hugging Face model directory (no config.json)"))
    if args.data is not None and not Path(args.data).is_file():
        raise SystemExit(f"svs-verl preview: --data {args.data}: no such file")
    model, data_file = args.model, args.data
    if model is None:
        from .model import build_smollm2, default_model_dir, is_ready

        where = default_model_dir()
        print(f"svs-verl preview: embedded model {'found' if is_ready(where) else 'not built yet, building it'} "
              f"at {where} (the directory `svs-verl model smollm2` writes by default; --model DIR for another)",
              file=sys.stderr)
        model = build_smollm2(where)
    if data_file is None:
        from .data.quickstart import write_quickstart
        from .quickstart import default_data_dir

        data = default_data_dir(0)
        if not all((data / f).is_file() for f in ("train.parquet", "val.parquet")):
            write_quickstart(data, seed=0)
        data_file = data / "train.parquet"
    problems = load_problems(Path(data_file), args.problems)
    print(f"svs-verl preview: model {model}, {len(problems)} problems from {data_file}, config {args.config}",
          file=sys.stderr)
    generator = load_generator(str(model), backend=args.backend)
    result = run_round(generator, problems, settings, args.seed)
    print(render(result, width=args.width))
    print(f"\n({time.time() - t0:.0f} s)", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
        print(f"round written to {args.json}", file=sys.stderr)
    return 0


def add_parser(subparsers) -> None:
    from .argtypes import int_at_least, template_spec

    _positive = int_at_least(1)
    s = subparsers.add_parser("preview", help="one SvS synthesis round with a real model, as a table (CPU or GPU)")
    s.add_argument("--model", type=Path, default=None, help="HF model directory (default: the embedded SmolLM2-135M)")
    s.add_argument("--data", type=Path, default=None,
                   help="verl-format parquet of problems (default: the embedded quickstart training data)")
    s.add_argument("--config", default="quickstart",
                   help="run config whose svs/rollout/reward settings are used: a name (quickstart, svs_dapo) "
                        "or a YAML file")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="hydra override of that config, e.g. --set svs.synthesis_n=4 (repeatable)")
    s.add_argument("--problems", type=_positive, default=8, help="number of problems (first rows of the data)")
    s.add_argument("--n", type=_positive, default=None, help="solutions per problem (default: rollout.n of the config)")
    s.add_argument("--synthesis-n", type=_positive, default=None, help="syntheses per seed (default: svs.synthesis_n)")
    s.add_argument("--solve-n", type=_positive, default=None,
                   help="solutions per variational problem (default: svs.solve_n)")
    s.add_argument("--template", type=template_spec, default=None,
                   help="synthesis template: built-in name or YAML/JSON file")
    s.add_argument("--max-tokens", type=_positive, default=None,
                   help=f"tokens per sample (default: data.max_response_length of the config; at most "
                        f"{CPU_MAX_TOKENS} without a CUDA GPU)")
    s.add_argument("--backend", default="auto", choices=["auto", "vllm", "transformers"], help="generation backend")
    s.add_argument("--seed", type=int, default=0, help="sampling seed")
    s.add_argument("--width", type=int_at_least(10), default=60, help="characters of problem text shown per row")
    s.add_argument("--json", default=None, help="also write the whole round (records, metrics) to this JSON file")
    s.set_defaults(func=run)
