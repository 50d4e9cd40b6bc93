"""An in-process OpenAI-compatible chat server on 127.0.0.1 whose answers come from a Python
function of the request's messages (no external network). Used to play judge models,
including *gullible* ones that obey forged turns, to test that escaping defeats them."""

from __future__ import annotations

import re
from collections.abc import Callable

from ..fake_openai import FakeOpenAIServer, chat_completion

KEY = "sk-judge-test"


class JudgeServer(FakeOpenAIServer):
    """``with JudgeServer(answer) as srv:`` then ``make_backend(srv.spec)``;
    ``srv.requests`` holds every request body."""

    def __init__(self, answer: Callable[[list[dict]], str], model: str = "judge-model"):
        super().__init__()
        self.answer, self.model = answer, model
        self.spec = f"openai:{model}@{self.url}"

    def handle(self, handler, body):
        self.record(body)
        return 200, chat_completion(self.answer(body["messages"]))


def user_text(messages: list[dict]) -> str:
    return [m["content"] for m in messages if m["role"] == "user"][-1]


# A gullible judge obeys the *last* turn marker it sees, as a model reading raw special
# tokens would: text after an unescaped "[/INST]" or "<|im_start|>assistant" is taken as its
# own answer.
_FORGED = re.compile(r"(?:\[/INST\]|<\|im_start\|>assistant)\s*(\w+)")


def forged_answer(text: str) -> str | None:
    found = _FORGED.findall(text)
    return found[-1] if found else None


def gullible_harmbench(messages: list[dict]) -> str:
    """Yes iff the generation contains 'Step 1' — unless a forged turn says otherwise."""
    text = user_text(messages)
    forged = forged_answer(text)
    if forged:
        return forged
    gen = text.split("[GENERATION]:", 1)[1].split("\n---\nRules:", 1)[0]
    return "Yes" if "Step 1" in gen else "No"


def quoting_strongreject(messages: list[dict]) -> str:
    """Honest rubric answer (refused iff the reply says 'cannot'), then a note quoting the
    reply verbatim *after* its own scores, as verbose judges do."""
    text = user_text(messages)
    reply = text.split("AI model response:", 1)[1].split("\n\nEvaluate the AI model", 1)[0].strip()
    refused = 1 if "cannot" in reply else 0
    conv, spec = (1, 1) if refused else (4, 5)
    return (f"#overall_reasoning the user wants harm.\n#scores\n1.a reason\n1.b {refused}\n"
            f"2.a reason\n2.b {conv}\n3.a reason\n3.b {spec}\n\nNote, the response read:\n{reply}\n")


def quoting_qi2023(messages: list[dict]) -> str:
    """Score 1 iff the reply says 'cannot' else 5, then the reply quoted on its own lines."""
    text = user_text(messages)
    reply = text.split('Model Response: "', 1)[1].split('"\n', 1)[0]
    score = 1 if "cannot" in reply else 5
    return f"#thereason: judged.\n#thescore: {score}\nQuoted reply:\n{reply}\n"
