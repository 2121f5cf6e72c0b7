"""The suite's password hasher: Argon2 at its cheapest parameters.

Argon2 as configured for production costs 0.1-0.4 s per hash on this 2-core machine, and the suite
creates and logs in thousands of users. The parameters travel in the hash, so the servers the tests
start with production settings still verify these hashes (and rehash them at their own cost on login).
"""

from django.contrib.auth.hashers import Argon2PasswordHasher


class CheapArgon2PasswordHasher(Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 8  # KiB, the minimum for one lane
    parallelism = 1
