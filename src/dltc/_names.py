"""Names every layer of dltc shares with dlt: the rejects table, dlt's data types, the
schema contract modes, and the separator of raw field-name components the decoder
exports. One home, so the decoder's Python side and the sources cannot drift apart."""

SEP = "\x1f"  # joins raw key components in the decoder's Arrow column names
REJECTS_TABLE = "_dltc_rejects"  # what a schema contract discarded, loaded, not dropped
DLT_TYPES = ("text", "bigint", "double", "bool", "timestamp", "date", "json")
MODES = ("evolve", "freeze", "discard_row", "discard_value")  # dlt's contract modes
