"""The entry `bentoml serve` and `bentofile.yaml` point at:

bentoml serve fncall.integrations.bentoml.service:ExchangeAssistant   # both services, one port
bentoml serve fncall.integrations.bentoml.service:LLMService          # the LLM service alone
"""

from fncall.integrations.bentoml.assistant_service import ExchangeAssistant
from fncall.integrations.bentoml.llm_service import LLMService

__all__ = ["ExchangeAssistant", "LLMService"]
