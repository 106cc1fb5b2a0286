"""Server-side message schemas: transactions (txn.py), internal actor messages (internal.py), zxid helpers."""
