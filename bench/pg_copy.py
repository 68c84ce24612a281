"""PostgreSQL COPY of Django model rows, for bench/datagen.py."""

from __future__ import annotations

from datetime import UTC, datetime


class Copier:
    """COPY rows of one Django model, filling every column the row does not name with the
    field's default, so columns other issues add keep working."""

    def __init__(self, cursor, model, given: list[str]):
        from psycopg.types.json import Jsonb

        self.jsonb = Jsonb
        fields = [f for f in model._meta.concrete_fields if not f.primary_key or f.attname in given]
        self.columns = [f.column for f in fields]
        self.order = [f.attname for f in fields]
        self.defaults = {}
        self.json_fields = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
        for f in fields:
            if f.attname not in given:
                if f.has_default() and not callable(f.default):
                    self.defaults[f.attname] = f.get_default()
                elif f.has_default():
                    self.defaults[f.attname] = f.get_default()  # same value each row (non-unique)
                elif f.null:
                    self.defaults[f.attname] = None
                elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                    self.defaults[f.attname] = datetime.now(UTC)
                else:
                    self.defaults[f.attname] = (
                        ""
                        if f.get_internal_type() in ("CharField", "TextField", "FileField")
                        else 0
                    )
        cols = ", ".join(f'"{c}"' for c in self.columns)
        self.ctx = cursor.copy(f'COPY "{model._meta.db_table}" ({cols}) FROM STDIN')
        self.copy = self.ctx.__enter__()

    def write(self, row: dict) -> None:
        values = []
        for name in self.order:
            value = row[name] if name in row else self.defaults[name]
            if name in self.json_fields and value is not None:
                value = self.jsonb(value)
            values.append(value)
        self.copy.write_row(values)

    def close(self) -> None:
        self.ctx.__exit__(None, None, None)
