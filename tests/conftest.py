import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Property tests (tests/test_fuzz.py): few examples by default, many with HYPOTHESIS_PROFILE=fuzz (make fuzz).
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("bounded", max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
settings.register_profile("fuzz", max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "bounded"))
