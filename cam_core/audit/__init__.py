"""Dataset audit (issue 20): the model across a whole image set. Imported here: inputs (``inputs``), the row
schema (``rows``) and the audit folder with its DuckDB read API (``store``) — light, for readers. The pass
(``scan``), the driver (``job.run_audit``) and the engines (``engine_local``, ``engine_ray``) import torch / Ray
and are imported from their modules. docs/audit.md."""
from .inputs import AuditInputs, InputItem, read_inputs
from .rows import audit_schema
from .store import Audit, AuditWriter, open_audit

__all__ = ["Audit", "AuditInputs", "AuditWriter", "InputItem", "audit_schema", "open_audit", "read_inputs"]
