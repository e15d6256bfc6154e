"""A stand-in for the user's browser, for tests: `BROWSER="python fake_browser.py %s"`.

It opens the sign-in URL and follows the redirects, exactly as a browser would after the user
approved the sign-in on puter.com (here: the emulator's authme route).
"""

import sys

import httpx2

if __name__ == "__main__":
    response = httpx2.get(sys.argv[1], follow_redirects=True, timeout=30)
    sys.exit(0 if response.status_code == 200 else 1)
