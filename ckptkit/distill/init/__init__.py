"""Make a distillation student: a Plan over the teacher's tensors (select layers, renumber, rename, fold).

The student is built by the same streaming engine as the converters. The teacher is seen
through its Hugging Face names; a TF teacher through its TF -> HF conversion plan, and the
student's steps are composed onto it, so only the tensors the student keeps are read.

One module per step of ``ckptkit distill init``:

* :mod:`~ckptkit.distill.init.layers`: which teacher layers (``--layers`` parsed once, or a strategy);
* :mod:`~ckptkit.distill.init.teacher`: the teacher opened, its config and family;
* :mod:`~ckptkit.distill.init.names`: student names (renumbering, DistilBERT renaming, folding);
* :mod:`~ckptkit.distill.init.distilbert`: the DistilBERT architecture as data, its config;
* :mod:`~ckptkit.distill.init.plan`: the Plan;
* :mod:`~ckptkit.distill.init.report`: the report, ``student.json`` and the record;
* :mod:`~ckptkit.distill.init.build`: :func:`build_student`, which runs them and writes the folder.

What a family contributes is declared by the family (``Family.student``).

Two student architectures:

* ``same``: the teacher's own class and config with fewer layers (token types kept), e.g.
  DistilKoBERT's 3-layer ``BertForMaskedLM`` from KoBERT layers 0, 4, 8.
* ``distilbert``: ``DistilBertForMaskedLM`` (or ``DistilBertModel`` for a teacher without an
  MLM head) with the teacher's activation, vocabulary and special-token ids. DistilBERT has no
  token-type embeddings: segment 0's row is folded into the position embeddings (single-segment
  inputs then embed exactly as in the teacher) or dropped (``token_types="drop"``, as DistilBERT did).

Example:
    >>> select_layers(12, num_layers=3, strategy="uniform")
    [0, 4, 8]
    >>> report = build_student("examples/tiny-bert", None, layers=[1], dry_run=True)
    >>> report.layers, report.model_class
    ([1], 'BertForPreTraining')
"""

from ckptkit.distill.init.build import STUDENT_FILE, build_student, stream_plan
from ckptkit.distill.init.distilbert import student_config
from ckptkit.distill.init.layers import STRATEGIES, LayerChoice, parse_layer_list, parse_layers, select_layers
from ckptkit.distill.init.names import Copied
from ckptkit.distill.init.plan import ARCHS, TOKEN_TYPE_MODES, plan_student
from ckptkit.distill.init.report import StudentReport
from ckptkit.distill.init.teacher import Teacher, open_teacher

__all__ = ["STRATEGIES", "ARCHS", "TOKEN_TYPE_MODES", "select_layers", "parse_layers", "parse_layer_list",
           "LayerChoice", "Teacher", "open_teacher", "plan_student", "student_config", "StudentReport", "Copied",
           "build_student", "STUDENT_FILE", "stream_plan"]

INIT_MODULES = ("layers", "teacher", "names", "distilbert", "plan", "report", "build")
