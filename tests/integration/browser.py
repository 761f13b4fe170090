"""browser — a headless Chromium driven through its WebDriver (chromedriver, with Selenium),
for the dashboard's test (test_ui.py) and bench/ui.

Debian packages: chromium, chromium-driver, python3-selenium (scripts/install-deps). As root
Chromium needs --no-sandbox; the other flags keep it from reaching for the network by
itself (updates, sync, field trials), which a closed network answers by refusing, and from
QUIC. Each browser gets a fresh profile dir (a test temp dir).

Stopping is by PID: chromedriver and every process below it (the browser, its zygote,
renderers and helpers) are noted before `quit()`, waited for, and killed by PID if they
outlive it. A test registers the stop with harness.on_teardown, so a failing test stops the
browser too.
"""

import os
import signal
import sys
import time

import harness as h

CHROMIUM = os.environ.get("MICROVIM_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MICROVIM_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")
STOP_TIMEOUT = 10.0


def _selenium():
    try:
        import selenium  # noqa: F401
    except ImportError:
        # Debian's python3-selenium is in the system's dist-packages, which a python3 of
        # its own (pyenv, a venv) does not search.
        sys.path.append("/usr/lib/python3/dist-packages")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.remote.remote_connection import RemoteConnection
    except ImportError as e:
        raise AssertionError(f"Selenium is missing ({e}): run scripts/install-deps "
                             "(Debian: python3-selenium)") from None
    return webdriver, Service, RemoteConnection


def _children():
    """{ppid: [pid, ...]} of every process now."""
    out = {}
    for ent in os.listdir("/proc"):
        if not ent.isdigit():
            continue
        try:
            with open(f"/proc/{ent}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        out.setdefault(int(fields[1]), []).append(int(ent))
    return out


def descendants(pid):
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid):
    """True unless the process is gone or a zombie (PID 1 may take its time to reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] != "Z"


class Browser:
    def __init__(self, width=1280, height=820):
        missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
        if missing:
            raise AssertionError(f"{', '.join(missing)} not found: run scripts/install-deps "
                                 "(Debian: chromium chromium-driver python3-selenium)")
        webdriver, Service, RemoteConnection = _selenium()
        RemoteConnection.set_timeout(30)  # no WebDriver call may hang a test
        self.profile = h.tmpdir("mv-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={self.profile}/profile")
        opts.add_argument(f"--window-size={width},{height}")
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.service = Service(CHROMEDRIVER, port=h.free_port(),
                               log_path=os.path.join(self.profile, "chromedriver.log"))
        self.driver = None
        self.console = []  # every browser log entry read so far
        h.on_teardown(self.stop)
        self.driver = webdriver.Chrome(service=self.service, options=opts)
        self.driver.set_script_timeout(10)

    @property
    def pid(self):
        return self.service.process.pid if self.service.process else None

    def get(self, url):
        self.driver.get(url)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def wait_js(self, script, timeout, what, *args):
        """Runs the script until it returns something truthy; returns that."""
        box = {}

        def check():
            try:
                box["last"] = self.js(script, *args)
            except Exception as e:  # noqa: BLE001 - the page may be between two renders
                box["last"] = repr(e)
                return None
            return box["last"]
        try:
            return h.wait_until(check, timeout, what, 0.05)
        except AssertionError:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: "
                                 f"{box.get('last')!r}; page: {self.page_text()[:800]!r}") from None

    def page_text(self):
        try:
            return self.js("return document.body ? document.body.innerText : ''") or ""
        except Exception as e:  # noqa: BLE001
            return f"(no page text: {e!r})"

    def logs(self):
        """The browser's console and network log so far (entries accumulate)."""
        self.console.extend(self.driver.get_log("browser"))
        return list(self.console)

    def screenshot(self, path):
        if not self.driver.save_screenshot(path):
            raise AssertionError(f"screenshot {path} failed")
        return path

    def stop(self):
        """quit(), then make sure chromedriver and everything it started is gone, by PID."""
        if self.driver is None and not self.service.process:
            return
        root = self.pid
        pids = ([root] + descendants(root)) if root else []
        try:
            if self.driver is not None:
                self.driver.quit()
        except Exception as e:  # noqa: BLE001
            h.problem(f"chromedriver quit failed: {e!r}")
        finally:
            self.driver = None
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        left = [p for p in pids if _alive(p)]
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if left:
            h.problem(f"browser processes outlived quit() by {STOP_TIMEOUT} s, killed: {left}")
        if self.service.process:
            try:
                self.service.process.wait(timeout=5)
            except Exception:  # noqa: BLE001
                pass
