"""Per-camera processing between the estimator and the message core, shared by the live node and bag replay."""
