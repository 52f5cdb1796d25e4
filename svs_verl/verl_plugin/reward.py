"""Reward manager ``svs`` (``reward.reward_manager.name=svs``): scores one trajectory by its SvS role.

* original problem / variational solve (``extra_info.svs_role`` absent / ``"solve"``): the hybrid verifier
  (``svs_verl.verify``) against the ground truth (for a variational problem: the *original* one), or a user
  verifier when ``reward.custom_reward_function.path`` is set;
* synthesis (``"synthesis"``): 0 here — its reward depends on how the policy later solves the problem it
  wrote, so ``SvsReplayBuffer`` writes it into ``rm_scores`` once that solve group has finished.

``reward_extra_info`` (numbers only, so verl's metrics and validation tables take them):
``acc`` (1/0 verifier verdict; the DAPO filter metric), ``svs_role`` (0 original, 1 synthesis, 2 solve),
``verify_timeout``, ``verify_error`` (a reference answer math-verify cannot parse; logged),
``bad_ground_truth`` (1 when the row's ground truth cannot be verified at all -- null, NaN, infinite, empty,
the text ``None``/``nan``, an empty box, not a string or number: ``svs_verl.verify.ground_truth_text``; the
sample scores ``wrong_reward`` and a warning names the row once per reward worker) and, with the overlong
penalty on, ``overlong_reward``/``overlong``. With a custom verifier the ground truth goes to it as it is in
the data (numbers as text, null as None), never as the string ``"None"``.

Settings (``reward.reward_kwargs``): ``answer_extraction`` (``auto``/``boxed``/``last_number``, or a mapping
``{data_source: mode, default: mode}``), ``verify_timeout_s`` (5), ``correct_reward`` (1.0),
``wrong_reward`` (0.0), ``max_resp_len`` + ``overlong_buffer_cfg.{enable,len,penalty_factor}`` as in
verl's ``dapo`` manager (the penalty is a float, clipped at ``-penalty_factor``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from typing import Any

from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from ..verify import ground_truth_text, verify_batch

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("SVS_LOGGING_LEVEL", "INFO"))

ROLE_CODES = {"original": 0, "synthesis": 1, "solve": 2}
WARNED_ROWS_MAX = 100_000  # rows remembered for the once-per-row warnings
EXTRACTION_MODES = ("auto", "boxed", "last_number")


def _short(value: Any, limit: int = 80) -> str:
    """``repr`` of a value from the data, cut to ``limit`` characters (a message never holds a whole row)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _get(node: Any, key: str, default: Any = None) -> Any:
    if node is None:
        return default
    getter = getattr(node, "get", None)
    return getter(key, default) if getter else default


@register("svs")
class SvsRewardManager(RewardManagerBase):
    def __init__(self, config, tokenizer, compute_score, reward_router_address=None, reward_model_tokenizer=None):
        super().__init__(config, tokenizer, compute_score)
        reward_cfg = _get(config, "reward", {})
        kw = _get(reward_cfg, "reward_kwargs", {}) or {}
        custom_path = _get(_get(reward_cfg, "custom_reward_function", {}), "path")
        self.custom_score = compute_score if custom_path else None
        self.custom_is_async = inspect.iscoroutinefunction(compute_score) if custom_path else False
        extraction = _get(kw, "answer_extraction", "auto")
        self.extraction = dict(extraction) if hasattr(extraction, "items") else {"default": extraction}
        for source, mode in self.extraction.items():
            if mode not in EXTRACTION_MODES:
                raise ValueError(f"reward.reward_kwargs.answer_extraction[{_short(source)}] = {_short(mode)}: "
                                 f"expected one of {EXTRACTION_MODES}")
        self._warned: set[tuple[str, str, str]] = set()
        self.timeout_s = float(_get(kw, "verify_timeout_s", 5.0))
        self.correct_reward = float(_get(kw, "correct_reward", 1.0))
        self.wrong_reward = float(_get(kw, "wrong_reward", 0.0))
        overlong = _get(kw, "overlong_buffer_cfg", None)
        self.overlong = bool(_get(overlong, "enable", False))
        if self.overlong:
            self.max_resp_len = _get(kw, "max_resp_len", None)
            self.overlong_len = int(_get(overlong, "len", 0))
            self.overlong_factor = float(_get(overlong, "penalty_factor", 1.0))
            if self.max_resp_len is None or self.overlong_len <= 0 or self.max_resp_len < self.overlong_len:
                raise ValueError("reward.reward_kwargs: the overlong penalty needs max_resp_len >= "
                                 "overlong_buffer_cfg.len > 0")

    def _warn_row(self, data_source: str, extra_info: dict, message: str) -> None:
        """One warning per dataset row (data_source, extra_info.index) and reason, not one per sample."""
        key = (data_source, str(extra_info.get("index")), message[:40])
        if key in self._warned or len(self._warned) >= WARNED_ROWS_MAX:
            return
        self._warned.add(key)
        logger.warning("svs reward: data_source %s, row index %s: %s", data_source, extra_info.get("index"), message)

    def extraction_for(self, data_source: str) -> str:
        return self.extraction.get(data_source, self.extraction.get("default", "auto"))

    async def run_single(self, data: DataProto) -> dict:
        item = data[-1:][0]
        response_ids = item.batch["responses"]
        length = int(item.batch["attention_mask"][-response_ids.shape[-1]:].sum())
        nt = item.non_tensor_batch
        extra_info = dict(nt.get("extra_info", None) or {})
        role = str(extra_info.get("svs_role", "original"))
        info: dict[str, float] = {"svs_role": float(ROLE_CODES.get(role, 0)), "verify_timeout": 0.0,
                                  "verify_error": 0.0, "bad_ground_truth": 0.0}
        if role == "synthesis":
            score, correct = 0.0, False  # filled in by SvsReplayBuffer once the solve group finishes
        else:
            text = await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.tokenizer.decode(response_ids[:length], skip_special_tokens=True))
            reward_model = nt.get("reward_model", None)
            raw_truth = reward_model.get("ground_truth") if isinstance(reward_model, dict) else None
            data_source = str(nt.get("data_source", "unknown"))
            if self.custom_score is not None:  # the user's verifier decides what a usable ground truth is
                truth = str(raw_truth) if isinstance(raw_truth, (str, int, float)) else raw_truth
                correct, reason = await self._score(data_source, text, truth, extra_info)
            else:
                truth, why = ground_truth_text(raw_truth)
                if truth is None:  # never verified against str(None) = "None": reward 0, counted, named
                    correct, reason = False, "bad_ground_truth"
                    info["bad_ground_truth"] = 1.0
                    self._warn_row(data_source, extra_info, f"{why} (reward_model.ground_truth = "
                                   f"{_short(raw_truth)}): every response scores {self.wrong_reward:g}")
                else:
                    correct, reason = await self._score(data_source, text, truth, extra_info)
            info["verify_timeout"] = float(reason == "timeout")
            info["verify_error"] = float(reason == "error")  # e.g. a reference answer math-verify cannot parse
            if reason == "error":
                self._warn_row(data_source, extra_info, f"cannot verify against ground truth {_short(truth)}")
            score = self.correct_reward if correct else self.wrong_reward
        info["acc"] = float(correct)
        if self.overlong and role != "synthesis":
            expected = self.max_resp_len - self.overlong_len
            penalty = max(min(-(length - expected) / self.overlong_len * self.overlong_factor, 0.0),
                          -self.overlong_factor)
            score += penalty
            info["overlong_reward"] = penalty
            info["overlong"] = float(penalty < 0)
        return {"reward_score": float(score), "reward_extra_info": info}

    async def _score(self, data_source: str, text: str, ground_truth: str, extra_info: dict) -> tuple[bool, str]:
        if self.custom_score is not None:
            kwargs = dict(data_source=data_source, solution_str=text, ground_truth=ground_truth, extra_info=extra_info)
            if self.custom_is_async:
                result = await self.custom_score(**kwargs)
            else:
                result = await asyncio.get_running_loop().run_in_executor(None, lambda: self.custom_score(**kwargs))
            value = result.get("score", 0.0) if isinstance(result, dict) else result
            return float(value) > 0, "custom"
        mode = self.extraction_for(data_source)
        verdict = (await asyncio.get_running_loop().run_in_executor(
            None, lambda: verify_batch([text], [ground_truth], timeout_s=self.timeout_s, extract=mode)))[0]
        return verdict.correct, verdict.reason
