"""Tasks: one class each, behind a registry (see :mod:`.base`).

Built in: ``region`` (geocells with haversine label smoothing), ``country``, ``latlon``,
``distance`` (against country anchors) and ``multi`` (any of them with a weight per loss).
Importing this package imports no torch.
"""

from geocell_engine.engine.tasks.base import (
    Anchors,
    Labels,
    Task,
    create_task,
    get_task_class,
    list_tasks,
    register_task,
    task_from_state,
)
from geocell_engine.engine.tasks.country import CountryTask
from geocell_engine.engine.tasks.distance import DistanceTask
from geocell_engine.engine.tasks.latlon import LatLonTask
from geocell_engine.engine.tasks.multi import MultiTask
from geocell_engine.engine.tasks.region import CellState, RegionTask, build_cells

__all__ = ["Anchors", "Labels", "Task", "create_task", "get_task_class", "list_tasks", "register_task",
           "task_from_state", "CountryTask", "DistanceTask", "LatLonTask", "MultiTask", "RegionTask",
           "CellState", "build_cells"]
