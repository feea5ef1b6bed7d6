"""Debian's archive as this machine's apt sees it: its sources (sources), its mirror and a
private apt for other suites (archive), and the deb822 format they share (deb822)."""
