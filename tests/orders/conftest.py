import pytest

from tests.conftest import compliance_quiet_for_lifecycle


@pytest.fixture(autouse=True)
def _lifecycle_compliance(request):
    compliance_quiet_for_lifecycle(request)
