"""crosscheck: the nightly cross-department checks (README.md)."""

from crosscheck.logs import quiet_libraries

quiet_libraries()  # whoever imports crosscheck (CLI, Airflow task, test) gets no library start-up chatter
