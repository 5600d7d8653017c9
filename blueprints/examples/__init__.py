"""The blueprints shipped with the engine, as working examples to copy."""

from blueprints.examples.algorithm_explainer import ALGORITHM_EXPLAINER_V1
from blueprints.examples.workspace_notes import WORKSPACE_NOTES_V1

BLUEPRINTS = [ALGORITHM_EXPLAINER_V1, WORKSPACE_NOTES_V1]
