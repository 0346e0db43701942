"""Long work as jobs: a SQLite store and a manager that runs them on the compute workers."""
