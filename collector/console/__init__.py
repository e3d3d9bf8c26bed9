"""The console: the web application of the people who act on ratings (``hcp console``).

Hall managers, follow-up officers, appeal reviewers, supervisors and operators
log in (:mod:`.auth`), see their halls' 差评 work queue, appeals and exclusions,
look up ratings and cases, watch the fleet; every action is in the audit log
(:mod:`.audit`). :func:`.app.build_app` makes the Starlette app.
"""
