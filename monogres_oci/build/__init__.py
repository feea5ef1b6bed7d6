"""The build stage: sources fetched and verified (fetch), compiled by BuildKit from the
Dockerfiles (buildkit, recipes, compile/), in base images made from Debian packages (base); run
orchestrates fetch, compile, package and gate for a plan, and state keeps what each target came to."""
