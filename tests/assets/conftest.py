"""The runner-style suite under runner_suite/ is data for `probe triage`, not tests of this project."""

collect_ignore_glob = ["runner_suite/*"]
