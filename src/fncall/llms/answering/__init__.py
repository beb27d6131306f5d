"""How a backend answers around tool calls: the policy, its call checks, its prompt, its answer check."""

from fncall.llms.answering.calls import new_calls
from fncall.llms.answering.policy import AnswerPolicy, Generate, is_echo

__all__ = ["AnswerPolicy", "Generate", "is_echo", "new_calls"]
