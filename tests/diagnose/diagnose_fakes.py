"""Fakes for diagnose tests: a scripted backend and a start-of-reply refusal judge."""

from __future__ import annotations

REFUSALS = ("I cannot", "I'm sorry", "As an AI")


class StartRefusalJudge:
    name = "fake-refusal"

    def __init__(self):
        self.calls = 0

    def judge(self, prompts, responses):
        self.calls += 1
        out = []
        for r in responses:
            hit = next((p for p in REFUSALS if r.strip().startswith(p)), None)
            out.append({"refused": hit is not None, "matched": hit})
        return out


class ScoreJudge:
    name = "fake-rubric"

    def judge(self, prompts, responses):
        return [{"score": 5 if "step" in r else (None if "???" in r else 1), "reason": "", "raw": ""}
                for r in responses]


class ScriptedBackend:
    """Refuses unless the prefill has at least ``threshold`` characters."""

    name = "fake"
    capabilities = frozenset({"generate", "prefill"})

    def __init__(self, threshold=10, after_prefix_refusal=""):
        self.threshold = threshold
        self.after = after_prefix_refusal
        self.calls = []

    def generate(self, conversations, *, prefill=None, config=None):
        prefill = prefill or [None] * len(conversations)
        self.calls.append((list(conversations), list(prefill)))
        out = []
        for conv, p in zip(conversations, prefill):
            if not p:
                out.append("I cannot help with that.")
            elif len(p) >= self.threshold:
                out.append(" step 2: continue")
            else:
                out.append(self.after or " I cannot continue this.")
        return out
