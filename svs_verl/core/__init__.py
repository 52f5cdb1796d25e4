"""The SvS algorithm (Liang et al. 2025, arXiv 2508.14029) as plain Python: no verl, no torch.

Read against the paper's Algorithm 1:

* ``bands``      group accuracy and the two inclusive bands (underperforming, synthesis reward);
* ``selection``  seeds, the synthesis reward, and which OQA / VPS / SPA groups enter the update;
* ``synthesis``  the synthesis prompt (templates) and the parser of the policy's output;
* ``guards``     opt-in (ours, off by default) named rejection reasons for a synthesized problem;
* ``config``     ``SvsSettings`` and ``validate_svs_section`` (every ``svs.*`` value checked, key named);
* ``round``      one step as a streaming state machine fed by finished groups;
* ``passk``      the unbiased pass@k estimator.
"""

from .bands import SYNTHESIS_REWARD_BAND, UNDERPERFORMING_BAND, AccuracyBand, GroupStats
from .config import SvsSettings, validate_svs_section
from .guards import GUARD_REASONS, GuardConfig, check_problem, guard_all
from .passk import k_ladder, mean_pass_at_k, mean_pass_at_k_counts, pass_at_k
from .round import SolveTask, SvsRound, SynthesisTask, UpdatePlan
from .selection import UpdateRules, select_seeds, synthesis_reward
from .synthesis import PARSE_REASONS, ParseResult, SynthesisTemplate, builtin_templates, parse_synthesis

__all__ = [
    "AccuracyBand", "GroupStats", "UNDERPERFORMING_BAND", "SYNTHESIS_REWARD_BAND", "SvsSettings", "validate_svs_section",
    "GuardConfig", "GUARD_REASONS", "check_problem", "guard_all", "pass_at_k", "mean_pass_at_k", "mean_pass_at_k_counts", "k_ladder", "SvsRound", "SynthesisTask",
    "SolveTask", "UpdatePlan", "UpdateRules", "select_seeds", "synthesis_reward", "ParseResult",
    "PARSE_REASONS", "SynthesisTemplate", "builtin_templates", "parse_synthesis",
]
