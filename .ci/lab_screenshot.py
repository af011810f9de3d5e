"""Run notebooks in a real JupyterLab in headless chromium and screenshot their widget pictures.

    .venv/bin/python .ci/lab_screenshot.py notebooks/04_patches.ipynb notebooks/14_style_transfer.ipynb --out build/lab

Widgets only show their true layout in a browser: this opens each notebook in JupyterLab (fast mode),
runs all cells, scrolls to every ipywidgets picture and saves a screenshot of it, and prints each
picture's PNG width beside the width the page gives it. Needs Debian's `chromium` (not part of CI).
"""

import argparse
import base64
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"gave up waiting {timeout} s for {what}")


def answers(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read()
    except OSError:
        return None


class Page:
    """One browser tab driven through the Chrome DevTools Protocol."""

    def __init__(self, debugging_port):
        targets = wait_for(lambda: answers(f"http://127.0.0.1:{debugging_port}/json"), 30, "chromium")
        page = next(t for t in json.loads(targets) if t["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        self.ids = itertools.count(1)
        self.call("Emulation.setFocusEmulationEnabled", enabled=True)   # JupyterLab tracks the focused notebook

    def call(self, method, **params):
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.socket.recv())
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")


STILL_RUNNING = "[...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'))"
DIAGNOSIS = ("JSON.stringify({title: document.title, app: !!window.jupyterapp,"
             " widget: window.notebook && notebook.title.label,"
             " kernel: (() => { try { return notebook.sessionContext.session.kernel.status }"
             " catch (e) { return String(e) } })(),"
             " dialog: [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText).join(' | ')})")
PICTURES = "document.querySelectorAll('img.widget-image').length"


def screenshot_notebook(page, lab_url, name, out):
    page.call("Page.navigate", url=f"{lab_url}/lab")
    wait_for(lambda: page.evaluate("!!(window.jupyterapp && jupyterapp.started)"), 120, "JupyterLab to start")
    page.evaluate("jupyterapp.started.then(() => jupyterapp.restored)")
    page.evaluate(f"jupyterapp.commands.execute('docmanager:open', {{path: {json.dumps(name)}}})"
                  ".then(widget => {{ window.notebook = widget; jupyterapp.shell.activateById(widget.id); return true; }})")
    ready = ("(() => { try { return notebook.sessionContext.session.kernel.status === 'idle' }"
             " catch (e) { return false } })()")
    try:
        wait_for(lambda: page.evaluate(ready), 180, f"{name} to open with an idle kernel")
    except TimeoutError:
        print(page.evaluate(DIAGNOSIS))
        raise
    start = time.monotonic()
    page.evaluate("jupyterapp.shell.activateById(notebook.id);"
                  " jupyterapp.commands.execute('notebook:run-all-cells'); true")   # not awaited: polled below
    time.sleep(3)
    wait_for(lambda: not page.evaluate(STILL_RUNNING), 900, f"{name} to finish")
    errors = page.evaluate("document.querySelectorAll('.jp-RenderedText[data-mime-type=\"application/vnd.jupyter.stderr\"] pre').length")
    print(f"{name}: ran in {time.monotonic() - start:.0f} s in JupyterLab; {errors} stderr outputs")
    count = wait_for(lambda: page.evaluate(PICTURES), 60, f"a widget picture in {name}")
    shots = []
    for index in range(count):
        picture = f"document.querySelectorAll('img.widget-image')[{index}]"
        for _ in range(3):      # cells above may still change height as they render: scroll until it stays
            page.evaluate(f"{picture}.scrollIntoView({{block: 'center'}}); true")
            time.sleep(1.5)
        sizes, box = page.evaluate(
            f"(() => {{ const img = {picture}; const area = img.closest('.jp-OutputArea').getBoundingClientRect();"
            " return [[img.naturalWidth, img.clientWidth, img.closest('.jp-Cell').clientWidth],"
            " [area.x, area.y, area.width, area.height]]; })()")
        clip = dict(zip(("x", "y", "width", "height"), box), scale=1)
        png = base64.b64decode(page.call("Page.captureScreenshot", format="png", clip=clip,
                                         captureBeyondViewport=False)["data"])
        path = out / f"{Path(name).stem}_widget{index}.png"
        path.write_bytes(png)
        print(f"  picture {index}: PNG {sizes[0]} px wide, shown {sizes[1]} px wide in a {sizes[2]} px cell -> {path}")
        shots.append(sizes)
    return shots


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("build/lab"))
    args = parser.parse_args(argv)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("error: needs chromium (Debian: apt-get install chromium)")
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp())
    for notebook in args.notebooks:
        shutil.copy(notebook, workdir / notebook.name)
    lab_port, debugging_port = free_port(), free_port()
    env = dict(os.environ, VIZLIB_FAST=os.environ.get("VIZLIB_FAST", "1"))
    lab = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={lab_port}", "--ServerApp.token=",
         "--ServerApp.password=", "--LabApp.expose_app_in_browser=True", "--allow-root",
         f"--ServerApp.root_dir={workdir}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chrome = subprocess.Popen(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--remote-debugging-port={debugging_port}", "--window-size=1400,1800", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lab_url = f"http://127.0.0.1:{lab_port}"
        wait_for(lambda: answers(f"{lab_url}/lab"), 120, "JupyterLab")
        page = Page(debugging_port)
        for notebook in args.notebooks:
            screenshot_notebook(page, lab_url, notebook.name, args.out)
    finally:
        chrome.terminate()
        lab.terminate()
        chrome.wait(30)
        lab.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
