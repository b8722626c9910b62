"""Dataset audit (issue 20): the model across a whole image set. Inputs (``inputs``), the row schema (``rows``)
and the audit folder with its DuckDB read API (``store``)."""
from .inputs import AuditInputs, InputItem, read_inputs
from .rows import audit_schema
from .store import Audit, AuditWriter, open_audit

__all__ = ["Audit", "AuditInputs", "AuditWriter", "InputItem", "audit_schema", "open_audit", "read_inputs"]
