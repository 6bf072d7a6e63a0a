#!/usr/bin/env python3
"""Reads an HTCondor configuration with HTCondor's own parser and evaluates its START expression.

Used by test/integration/condor-config.test.ts to check what shared/boot/condor-config.ts renders
against the real thing (the `htcondor` wheel pinned in scripts/requirements.txt; version 2 of the
bindings, `htcondor2` and `classad2`, the only ones HTCondor 25 ships).

Input, a JSON object on stdin:
  {
    "knobs": ["AnnexName", ...],              # configuration values to read back
    "jobs": {"label": {"Owner": "alice", ...}},  # job ads to match against this machine
    "constraints": {"label": "AnnexName =?= \"x\""}  # expressions evaluated in the machine ad
  }
The configuration itself is found as HTCondor finds it: through CONDOR_CONFIG.

Output, a JSON object on stdout:
  {
    "version": "$CondorVersion: ...",
    "knobs": {"AnnexName": "\"x\"", "STARTD_NOCLAIM_SHUTDOWN": 900, "MISSING": null, ...},
    "machineAd": {...},          # the attributes of STARTD_ATTRS as the startd would advertise them
    "start": {"label": true},    # START with the job as TARGET (null: undefined or error)
    "constraints": {"label": true}
  }
"""

import json
import re
import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import classad2
    import htcondor2


def plain(value):
    """A classad2 value as JSON: booleans, numbers and strings as themselves, the rest as text."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def boolean(value):
    return value if isinstance(value, bool) else None


def main():
    request = json.load(sys.stdin)
    htcondor2.reload_config()

    knobs = {}
    for name in request.get("knobs", []):
        value = htcondor2.param.get(name)
        knobs[name] = plain(value)

    # The machine ad as the startd builds it: every STARTD_ATTRS name whose configuration value is
    # parsed as a ClassAd expression, and START (which the startd evaluates for each job).
    machine = classad2.ClassAd()
    for name in re.split(r"[\s,]+", str(htcondor2.param.get("STARTD_ATTRS", "")).strip()):
        raw = htcondor2.param.get(name) if name != "" else None
        if raw is not None:
            machine[name] = classad2.ExprTree(str(raw))
    start = htcondor2.param.get("START")
    if start is not None:
        machine["START"] = classad2.ExprTree(str(start))

    results = {}
    for label, attributes in request.get("jobs", {}).items():
        job = classad2.ClassAd()
        for key, value in attributes.items():
            job[key] = value
        # The startd's view: START in the machine ad (MY), the job as TARGET. Undefined is no.
        results[label] = None if start is None else boolean(
            machine.lookup("START").eval(scope=machine, target=job)
        )

    constraints = {}
    for label, expression in request.get("constraints", {}).items():
        constraints[label] = boolean(classad2.ExprTree(expression).eval(machine))

    json.dump(
        {
            "version": htcondor2.version(),
            "knobs": knobs,
            "machineAd": {key: plain(machine.eval(key)) for key in machine.keys()},
            "start": results,
            "constraints": constraints,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
