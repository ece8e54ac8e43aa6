"""Another project's block type, registered from its own module (ORCHESTRATOR_BLOCK_MODULES)."""

from typing import Any

from orchestrator import register_block_type


@register_block_type("shout")
def shout(inputs: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"text": str(inputs.get("text", "")).upper()}
