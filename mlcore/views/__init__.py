"""The ML admin's console: thin function views per page group (DESIGN.md section 9)."""
