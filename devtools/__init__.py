"""Development harness: throwaway PostgreSQL, sshd hosts, S3 endpoint and the sandbox.

Never installed on a host (pyproject packages.find) nor shipped in a release (.gitattributes).
"""
