"""Unit tests of the parsing in library/galera_node_info.py.

Run from the repository root with the Python that has Ansible (Debian's):
/usr/bin/python3 -m unittest discover -s ansible/tests
"""

import importlib.util
import os
import tempfile
import unittest

_MODULE_PATH = os.path.join(os.path.dirname(__file__), "..", "library", "galera_node_info.py")
_SPEC = importlib.util.spec_from_file_location("galera_node_info", _MODULE_PATH)
galera_node_info = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(galera_node_info)


def write_grastate(folder, text):
    with open(os.path.join(folder, "grastate.dat"), "w", encoding="utf-8") as handle:
        handle.write(text)


class ReadGrastateTest(unittest.TestCase):
    def test_missing_file(self):
        with tempfile.TemporaryDirectory() as folder:
            state = galera_node_info.read_grastate(folder)
        self.assertFalse(state["exists"])
        self.assertEqual(state["uuid"], galera_node_info.ZERO_UUID)
        self.assertEqual(state["seqno"], -1)
        self.assertEqual(state["safe_to_bootstrap"], 0)

    def test_clean_shutdown(self):
        with tempfile.TemporaryDirectory() as folder:
            write_grastate(folder, "# GALERA saved state\nversion: 2.1\n"
                           "uuid:    5ee99582-bb8d-11e2-b8e3-23de375c1d30\n"
                           "seqno:   8204503945773\nsafe_to_bootstrap: 1\n")
            state = galera_node_info.read_grastate(folder)
        self.assertTrue(state["exists"])
        self.assertEqual(state["uuid"], "5ee99582-bb8d-11e2-b8e3-23de375c1d30")
        self.assertEqual(state["seqno"], 8204503945773)
        self.assertEqual(state["safe_to_bootstrap"], 1)

    def test_crashed_node(self):
        with tempfile.TemporaryDirectory() as folder:
            write_grastate(folder, "uuid: 5ee99582-bb8d-11e2-b8e3-23de375c1d30\n"
                           "seqno: -1\nsafe_to_bootstrap: 0\n")
            state = galera_node_info.read_grastate(folder)
        self.assertEqual(state["seqno"], -1)
        self.assertEqual(state["safe_to_bootstrap"], 0)

    def test_invalid_number_keeps_default(self):
        with tempfile.TemporaryDirectory() as folder:
            write_grastate(folder, "seqno: many\n")
            state = galera_node_info.read_grastate(folder)
        self.assertEqual(state["seqno"], -1)


class RecoveredPositionTest(unittest.TestCase):
    def test_matches_recovery_line(self):
        line = ("2024-01-01 12:00:00 0 [Note] WSREP: Recovered position: "
                "5ee99582-bb8d-11e2-b8e3-23de375c1d30:1234")
        match = galera_node_info.RECOVERED_RE.search(line)
        self.assertIsNotNone(match)
        self.assertEqual(match.group(1), "5ee99582-bb8d-11e2-b8e3-23de375c1d30")
        self.assertEqual(match.group(2), "1234")

    def test_matches_negative_seqno(self):
        match = galera_node_info.RECOVERED_RE.search(
            "WSREP: Recovered position: 00000000-0000-0000-0000-000000000000:-1")
        self.assertEqual(match.group(2), "-1")

    def test_ignores_other_lines(self):
        self.assertIsNone(galera_node_info.RECOVERED_RE.search("WSREP: Position recovery skipped."))


if __name__ == "__main__":
    unittest.main()
