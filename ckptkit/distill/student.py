"""The public import path of ``ckptkit distill init``'s library; the code is in :mod:`ckptkit.distill.init`.

Example:
    >>> from ckptkit.distill.student import build_student, select_layers
    >>> select_layers(12, num_layers=6, strategy="distilbert")
    [0, 2, 4, 7, 9, 11]
"""

from ckptkit.distill.init import (ARCHS, STRATEGIES, STUDENT_FILE, TOKEN_TYPE_MODES, Copied, LayerChoice,
                                  StudentReport, Teacher, build_student, open_teacher, parse_layer_list, parse_layers,
                                  plan_student, select_layers, stream_plan, student_config)

__all__ = ["STRATEGIES", "ARCHS", "TOKEN_TYPE_MODES", "select_layers", "parse_layers", "parse_layer_list",
           "LayerChoice", "Teacher", "open_teacher", "plan_student", "student_config", "StudentReport", "Copied",
           "build_student", "STUDENT_FILE", "stream_plan"]
