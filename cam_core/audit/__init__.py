"""Dataset audit (issue 20): the model across a whole image set. So far: reading the image set (``inputs``)."""
from .inputs import AuditInputs, InputItem, read_inputs

__all__ = ["AuditInputs", "InputItem", "read_inputs"]
