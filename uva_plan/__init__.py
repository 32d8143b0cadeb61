"""uva-plan: composition of the UVA world model and the planners: environments, datasets, training,
goal-image planning, imitation from action-free videos, visualisation and the CLI.

Submodules are imported on demand so that `import uva_plan` stays light.
"""

__version__ = "0.1.0"
