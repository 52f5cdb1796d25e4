"""Example: your own verifier behind the `svs` reward manager.

What it shows: a strict final-answer rule - the answer must be in \\boxed{} after any reasoning, and a
response that boxes several answers counts as correct only if every one of them is (no hedging with
"\\boxed{41} or \\boxed{42}", which verl's and svs-verl's own checkers accept because they read the last box).
Equivalence of a boxed answer and the reference is left to svs-verl's verifier.

Plug it into a run (svs_dapo or dapo; a path the Ray workers can read, so absolute):
    python -m verl.trainer.main_ppo --config-path "$(svs-verl configs)" --config-name svs_dapo ... \\
        reward.custom_reward_function.path=$PWD/examples/custom_verifier.py \\
        reward.custom_reward_function.name=compute_score
Try it here:  python examples/custom_verifier.py

The contract (svs_verl/verl_plugin/reward.py): the `svs` manager calls
compute_score(data_source=, solution_str=, ground_truth=, extra_info=) for original problems and for
variational solves (extra_info["svs_role"] == "solve"; ground_truth is then the original problem's answer).
Synthesis outputs never reach it: their reward comes from how the policy solves what they wrote.
Return a number or a dict with "score"; `async def` works too. The result is a verdict: score > 0 is
correct and earns reward.reward_kwargs.correct_reward, anything else wrong_reward (SvS needs a binary
verdict for its accuracy bands). Keys you add under reward.custom_reward_function.reward_kwargs
(`+reward.custom_reward_function.reward_kwargs.NAME=VALUE`) arrive as keyword arguments.
"""

from __future__ import annotations

from svs_verl.verify import verify_batch

BOX = "\\boxed{"


def boxed_answers(text: str) -> list[str]:
    """Contents of every \\boxed{...} (nested braces allowed) after the last </think>, in order."""
    text = text.rsplit("</think>", 1)[-1]
    found, start = [], text.find(BOX)
    while start >= 0:
        depth, i = 1, start + len(BOX)
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth:  # unclosed box: ignore the rest
            break
        found.append(text[start + len(BOX):i - 1].strip())
        start = text.find(BOX, i)
    return found


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None,
                  **kwargs) -> float:
    answers = boxed_answers(solution_str)
    if not answers:
        return 0.0
    verdicts = verify_batch([BOX + a + "}" for a in answers], [ground_truth] * len(answers), extract="boxed")
    return 1.0 if all(v.correct for v in verdicts) else 0.0


if __name__ == "__main__":
    for response in ["6 * 7 = 42, so \\boxed{42}.",
                     "It is \\boxed{\\dfrac{84}{2}}.",
                     "Either \\boxed{41} or \\boxed{42}.",
                     "The answer is 42."]:
        print(f"{compute_score('example', response, '42'):.0f}  {response}")
