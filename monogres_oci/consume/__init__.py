"""The consume stage: published images pulled (pull), verified (verify), installed on bare
metal (install), written into CloudNativePG manifests (cnpg), and rebuilt to compare digests
(identify, rebuild)."""
