"""rsi_models.outputs: atomic outputs and termination of the scripts rsi runs (model convert and
quantize): no file is replaced without --overwrite (also not one another run wrote meanwhile), no
temporary file survives a failure, and SIGINT/SIGTERM end the command with one line and exit 130.
The quantize case needs ../shared/data (its calibration tiles) or $RSI_DATA_ROOT.
"""
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import unittest

import _paths  # noqa: F401  (sys.path)
from rsi_models import outputs


def leftovers(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".tmp"))


def read(path):
    with open(path) as f:
        return f.read()


class AtomicOutput(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="rsi-outputs-")
        self.out = os.path.join(self.dir.name, "model.pt")

    def tearDown(self):
        self.dir.cleanup()

    def write(self, text, overwrite=False):
        with outputs.atomic_output(self.out, overwrite) as tmp:
            self.assertEqual(os.path.dirname(tmp), self.dir.name)
            with open(tmp, "w") as f:
                f.write(text)

    def test_new_file_appears_whole(self):
        self.write("new")
        self.assertEqual(read(self.out), "new")
        self.assertEqual(os.listdir(self.dir.name), ["model.pt"])

    def test_existing_file_needs_overwrite(self):
        with open(self.out, "w") as f:
            f.write("old")
        with self.assertRaisesRegex(outputs.OutputExists, r"model\.pt exists \(use --overwrite\)"):
            self.write("new")
        self.assertEqual(read(self.out), "old")
        with outputs.atomic_output(self.out, True) as tmp:
            with open(tmp, "w") as f:
                f.write("new")
        self.assertEqual(read(self.out), "new")
        self.assertEqual(leftovers(self.dir.name), [])

    def test_file_written_meanwhile_by_another_run_is_kept(self):
        with self.assertRaisesRegex(outputs.AppearedMeanwhile, "appeared while this run was writing it"):
            with outputs.atomic_output(self.out, False) as tmp:
                with open(tmp, "w") as f:
                    f.write("ours")
                with open(self.out, "w") as f:
                    f.write("theirs")
        self.assertEqual(read(self.out), "theirs")
        self.assertEqual(leftovers(self.dir.name), [])

    def test_failure_leaves_nothing(self):
        with self.assertRaises(ValueError):
            with outputs.atomic_output(self.out, False) as tmp:
                with open(tmp, "w") as f:
                    f.write("half")
                raise ValueError("verification failed")
        self.assertEqual(os.listdir(self.dir.name), [])

    def test_missing_folder_is_an_error_not_created(self):
        missing = os.path.join(self.dir.name, "no-such-folder", "m.pt")
        with self.assertRaises(OSError):
            with outputs.atomic_output(missing, False):
                pass
        self.assertFalse(os.path.exists(os.path.dirname(missing)))


# A command in the shape of rsi_convert/rsi_quantize: handlers first, the work inside
# raising_on_termination(), an Interrupted reported with one line and exit 130.
COMMAND = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from rsi_models import outputs
    outputs.handle_termination("demo")
    if sys.argv[3] == "early":
        print("ready", flush=True)
        time.sleep(60)  # e.g. importing torch: nothing written yet
    try:
        with outputs.raising_on_termination():
            with outputs.atomic_output(sys.argv[2], False) as tmp:
                open(tmp, "w").write("half")
                print("ready", flush=True)
                try:
                    time.sleep(60)
                except Exception:
                    if sys.argv[3] != "lost":
                        raise
                    # the raise is lost, as in C code importing an extension module: the work goes on
                open(tmp, "w").write("whole")
    except outputs.Interrupted:
        print("demo: interrupted", file=sys.stderr)
        sys.exit(outputs.INTERRUPTED_EXIT)
""")


class Termination(unittest.TestCase):
    def run_and_signal(self, when, signum):
        with tempfile.TemporaryDirectory(prefix="rsi-outputs-") as d:
            out = os.path.join(d, "m.pt")
            p = subprocess.Popen([sys.executable, "-c", COMMAND, _paths.MODELS_PY, out, when],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.assertEqual(p.stdout.readline().strip(), "ready")
            if when != "early":
                self.assertEqual(len(leftovers(d)), 1)  # the half-written file exists now
            p.send_signal(signum)
            _, err = p.communicate(timeout=30)
            self.assertEqual(p.returncode, 130, err)
            self.assertEqual(err, "demo: interrupted\n")  # one line, no traceback
            self.assertEqual(os.listdir(d), [])

    def test_sigterm_while_writing_removes_the_temporary(self):
        self.run_and_signal("late", signal.SIGTERM)

    def test_sigint_while_writing_removes_the_temporary(self):
        self.run_and_signal("late", signal.SIGINT)

    def test_an_interrupt_whose_raise_was_lost_still_ends_the_run_without_output(self):
        self.run_and_signal("lost", signal.SIGTERM)
        self.run_and_signal("lost", signal.SIGINT)

    def test_signal_before_the_work_exits_at_once(self):
        self.run_and_signal("early", signal.SIGTERM)
        self.run_and_signal("early", signal.SIGINT)


class QuantizeInterrupted(unittest.TestCase):
    """The real script: SIGTERM and SIGINT during calibration."""

    def test_an_interrupt_while_a_tile_is_read_is_not_a_file_error(self):
        # A signal landing while a calibration file was read came out as "<file>: SIGINT", exit 1
        # (the reader's error wrapping took the interruption for a problem of the file).
        from rsi_models import quantization as quant
        saved = quant.read_image

        def interrupted(path):
            raise outputs.Interrupted("SIGINT")
        quant.read_image = interrupted
        try:
            with self.assertRaises(outputs.Interrupted):
                quant.load_tiles(["a.tif"], {})
        finally:
            quant.read_image = saved

    def test_quantize_stopped_leaves_nothing(self):
        if not os.path.isdir(os.path.join(_paths.DATA_ROOT, "inria")):
            raise AssertionError("shared data not found at %s (set RSI_DATA_ROOT)" % _paths.DATA_ROOT)
        script = os.path.join(_paths.MODELS_PY, "rsi_quantize.py")
        for signum in (signal.SIGTERM, signal.SIGINT):
            with tempfile.TemporaryDirectory(prefix="rsi-outputs-") as d:
                out = os.path.join(d, "q.pt")
                # The signal goes out as soon as the first stage line shows the work has begun: reading,
                # calibrating on and verifying 25 tiles (one per inria/train image) takes far longer than
                # that. It lands while the first tile's reader imports GDAL, where the handler's raise was
                # once swallowed (see outputs.raise_if_interrupted).
                p = subprocess.Popen(["/usr/bin/python3", script, os.path.join(_paths.MODELS_DIR, "buildings.pt"),
                                      "-o", out, "--tiles", "25", "--threads", "1"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                first = p.stderr.readline()
                self.assertTrue(first.startswith("quantize: reading"), first)
                p.send_signal(signum)
                so, rest = p.communicate(timeout=120)
                err = first + rest
                self.assertEqual(p.returncode, 130, err)
                # one line, no traceback, after the stage lines printed so far
                lines = err.splitlines()
                self.assertEqual(lines[-1], "rsi model quantize: interrupted", err)
                self.assertTrue(all(line.startswith("quantize: ") for line in lines[:-1]), err)
                self.assertEqual(os.listdir(d), [])


class QuantizeNamesItsInput(unittest.TestCase):
    def test_a_file_that_is_not_a_model_is_named(self):
        with tempfile.TemporaryDirectory(prefix="rsi-outputs-") as d:
            text = os.path.join(d, "notes.pt")
            with open(text, "w") as f:
                f.write("not a model")
            r = subprocess.run(["/usr/bin/python3", os.path.join(_paths.MODELS_PY, "rsi_quantize.py"), text, "-o",
                                os.path.join(d, "q.pt")], capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
            self.assertIn("notes.pt: not a TorchScript model", r.stderr)
            self.assertEqual(sorted(os.listdir(d)), ["notes.pt"])


if __name__ == "__main__":
    unittest.main()
