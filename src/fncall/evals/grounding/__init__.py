"""The grounding evaluation: after tool results, does the model make the next call the question needs or
answer in prose with the results' exact values, and does it stay quiet when no tool fits?

Cases and fake tools are data (`cases`, `fake_tools`); `client` and `agents` run a case on a target and
record a `Transcript`; `scoring` judges it; `runner` runs targets in turn; `report` and `chart` write it up.
"""

from fncall.evals.grounding.cases import CASES, CATEGORIES, ExpectedCall, GroundingCase, select_cases
from fncall.evals.grounding.client import OpenAIClientDriver
from fncall.evals.grounding.fake_tools import FAKE_TOOLS, FakeTool, ToolOutcome, run_fake_tool
from fncall.evals.grounding.report import ReportMeta, render_markdown, summarise, write_report
from fncall.evals.grounding.results import CaseResult, MadeCall, TargetRun, Transcript
from fncall.evals.grounding.runner import run_cases, run_evaluation, run_target
from fncall.evals.grounding.scoring import Verdict, score_case
from fncall.evals.grounding.targets import DEFAULT_TARGETS, Target, TargetSettings, build_targets

__all__ = [
    "CASES",
    "CATEGORIES",
    "DEFAULT_TARGETS",
    "FAKE_TOOLS",
    "CaseResult",
    "ExpectedCall",
    "FakeTool",
    "GroundingCase",
    "MadeCall",
    "OpenAIClientDriver",
    "ReportMeta",
    "Target",
    "TargetRun",
    "TargetSettings",
    "ToolOutcome",
    "Transcript",
    "Verdict",
    "build_targets",
    "render_markdown",
    "run_cases",
    "run_evaluation",
    "run_fake_tool",
    "run_target",
    "score_case",
    "select_cases",
    "summarise",
    "write_report",
]
