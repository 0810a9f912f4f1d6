"""Training recipes, one module per objective.

Each module exposes ``run(ctx: RunContext) -> str`` returning the final status
(``"completed"`` or ``"stopped"``); an exception becomes a failed ``finished`` event.
Modules are imported by name only when a run needs them, so one objective's heavy imports
never slow down another.
"""

RECIPES = {
    "sft": "studio.worker.recipes.sft",
    "dpo": "studio.worker.recipes.dpo",
    "kto": "studio.worker.recipes.kto",
    "orpo": "studio.worker.recipes.orpo",
    "reward": "studio.worker.recipes.reward",
    "grpo": "studio.worker.recipes.grpo",
}
