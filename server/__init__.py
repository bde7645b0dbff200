"""The IGM Lab experiment service: FastAPI app, database models and migrations, the task queue."""
