"""The paper's ablations (Tab. 4–9, appendix Fig. 8) as named configs, and the runner behind ``finecliper ablate``."""
from finecliper.ablation.tables import TABLES, Row, Table, get_table, select_rows

__all__ = ["TABLES", "Row", "Table", "get_table", "select_rows"]
