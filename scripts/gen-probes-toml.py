#!/usr/bin/env python3
"""Regenerates the site list of probes.toml from shared/data/sites.csv.

Usage: python3 scripts/gen-probes-toml.py ../shared/data/sites.csv > probes.toml
The header (classes, templates, services) is kept in scripts/probes-header.toml.
The address plan written here is the built-in simulator's loopback plan: site number N
(1-based, file order) uses 127.10.0.N. Operators replace each `addr` with the real plan.
"""
import csv
import os
import sys


def q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
    here = os.path.dirname(os.path.abspath(__file__))
    sys.stdout.write(open(os.path.join(here, "probes-header.toml"), encoding="utf-8").read())
    print()
    print("# ---------------------------------------------------------------------------------------")
    print(f"# The {len(rows)} sites (from sites.csv) and their address plan.")
    print("# addr.link     = the site's router / link address (ICMP round)")
    print("# addr.endpoint = URL of the ward's public-service centre")
    print("# addr.video    = host:port of the video-conference point")
    print("# The shipped plan is the simulator's loopback plan (127.10.0.N). Replace it with yours.")
    print("# ---------------------------------------------------------------------------------------")
    print("[inventory]")
    print("sites = [")
    for i, r in enumerate(rows, start=1):
        ip = f"127.10.{i // 250}.{i % 250}"
        fields = [
            f"code = {q(r['code'])}",
            f"slug = {q(r['slug'])}",
            f"name = {q(r['name'])}",
            f"kind = {q(r['kind'])}",
            f"former_province = {q(r['former_province'])}",
            f"former_district = {q(r['former_district'])}",
            f"island = {r['island']}",
            f"lat = {r['lat']}",
            f"lon = {r['lon']}",
            f"addr = {{ link = {q(ip)}, endpoint = {q('http://' + ip + ':18080/healthz')}, video = {q(ip + ':15060')} }}",
        ]
        print("  { " + ", ".join(fields) + " },")
    print("]")


main()
