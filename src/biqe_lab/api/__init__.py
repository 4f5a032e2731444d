"""The BIQE job API: settings, SQLite job store, FastAPI routes and the worker (a front-end over the library)."""
