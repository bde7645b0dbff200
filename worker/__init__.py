"""IGM Lab workers: a Celery app and one thin task that runs an experiment with igm_core."""
