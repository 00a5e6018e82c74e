"""What one order's submission sends to the database: few round trips, so the single
submit path stays cheap (STYLE "count statements in tests of hot paths")."""

from __future__ import annotations

import pytest

from compliance.models import RuleSetting

pytestmark = pytest.mark.django_db


def test_one_order_s_submission_is_a_handful_of_round_trips(submit, django_assert_max_num_queries):
    # Reads that do not depend on each other go together; the order and its steps'
    # rows in one statement. The reference version is read under the account's lock,
    # and what the rules read (exposure, duplicates, wash trades, message counts)
    # before they run, in one round trip.
    RuleSetting.objects.filter(scope="firm").update(enabled=True)  # every rule reads (the suite quiets some)
    submit(quantity=100)  # warm: the process's compiled reads and reference copy
    with django_assert_max_num_queries(8) as queries:
        order = submit(quantity=101)
    sent = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    locked = [sql for sql in sent if "FOR NO KEY UPDATE" in sql]
    assert len(locked) == 1 and "compliance_reference_version" in locked[0] and "nextval" in locked[0]
    assert sum("compliance_reference_version" in sql for sql in sent) == 1
    rules = [sql for sql in sent if '"orders_position"' in sql]
    assert len(rules) == 1 and all(
        read in rules[0] for read in ('"orders_accountexposure"', "COUNT(CASE", '"orders_execution"', '"id" DESC')
    )
    writes = [sql for sql in sent if sql.startswith("INSERT")]
    assert len(writes) == 1 and f"({order.pk}, " in writes[0]
    assert 'INSERT INTO "audit_auditevent"' in writes[0] and 'INSERT INTO "compliance_complianceverdict"' in writes[0]
