"""The plan stage: the catalog expanded into targets, each named by an input digest (targets),
what each has come to (status), what a registry holds of them (published), cut into shards and
written as rows for `plan`."""
