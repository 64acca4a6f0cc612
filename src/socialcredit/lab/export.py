"""Writing the ledgers of a run to disk, partition by partition, as Parquet.

The folder is filled under a temporary name next to it and renamed when the run is done,
so an interrupted run leaves no half-written ledger. Layout::

    DIR/subjects-p00000.parquet          # the partition's subjects (canonical schema)
    DIR/relations-p00000.parquet         # its households and friends (worlds with networks)
    DIR/<scheme>/records-p00000.parquet  # its ledger under the scheme (canonical schema)
    DIR/<scheme>/false-p00000.parquet    # ids of the records of conduct that never happened
    DIR/<scheme>/ratings-p00000.parquet  # the peer ratings drawn (schemes that read them)

Every file is a valid input of ``socialcredit score`` (``--subjects``, ``--records``,
``--relations``, ``--ratings``): the files of one partition give its final states.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from socialcredit.errors import SocialCreditError
from socialcredit.lab.networks import relations_table
from socialcredit.lab.population import Population


class LedgerFolderTaken(SocialCreditError):
    """The folder for a run's ledger already exists."""


class LedgerWriter:
    """Receives each partition's ledger (see :data:`socialcredit.lab.simulate.LedgerSink`)."""

    def __init__(self, folder: Path) -> None:
        if folder.exists():
            raise LedgerFolderTaken(
                f"{folder} already exists; give --ledger a new folder (a run never mixes its "
                "ledger with another's)"
            )
        self.folder = folder
        self.partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")

    def start(self) -> None:
        """Create the temporary folder."""
        self.partial.mkdir(parents=True)

    def __call__(
        self,
        partition: int,
        scheme: str,
        population: Population,
        records: pa.Table,
        false: npt.NDArray[np.bool_],
        ratings: pa.Table | None = None,
    ) -> None:
        name = f"p{partition:05d}.parquet"
        subjects = self.partial / f"subjects-{name}"
        if not subjects.exists():  # the first scheme of the partition
            pq.write_table(population.agent_subjects, subjects)
            if population.has_networks:
                table = relations_table(
                    population.person_codes, population.homes, population.friends
                )
                pq.write_table(table, self.partial / f"relations-{name}")
                del table
        folder = self.partial / scheme
        folder.mkdir(exist_ok=True)
        pq.write_table(records, folder / f"records-{name}")
        false_ids = records.select(["id"]).filter(pa.array(false))
        pq.write_table(false_ids, folder / f"false-{name}")
        if ratings is not None:
            pq.write_table(ratings, folder / f"ratings-{name}")

    def commit(self) -> None:
        """Give the folder its name."""
        os.replace(self.partial, self.folder)

    def abort(self) -> None:
        """Remove what was written."""
        shutil.rmtree(self.partial, ignore_errors=True)

    def size(self) -> int:
        """Bytes written so far."""
        root = self.folder if self.folder.exists() else self.partial
        return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
