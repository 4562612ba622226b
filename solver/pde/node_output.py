"""Snapshots of the moving nodes of the lagrangian scheme (rank 0 writes).

``nodes.xdmf`` + ``nodes.h5``: one point cloud per snapshot (XDMF Polyvertex topology, the
nodes in mesh coordinates, point data ``rho`` = the density at the node by the flow map's
Jacobian and ``W`` = its weight); ParaView's XDMF reader opens it ("Point Gaussian"
representation). Both files are rewritten whole at every snapshot under temporary names and
renamed into place, so an interrupted run leaves the last complete pair. ``snapshots`` keeps
(t, cell images, mean densities) on rank 0 for ``solver.plots.plot_snapshots``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from solver.errors import DiskFullError
from solver.io import atomic_h5, write_bytes_atomic

_GRID = """    <Grid Name="t{i}" GridType="Uniform">
      <Time Value="{t!r}"/>
      <Topology TopologyType="Polyvertex" NumberOfElements="{n}" NodesPerElement="1"/>
      <Geometry GeometryType="XYZ">
        <DataItem Dimensions="{n} 3" Format="HDF" NumberType="Float" Precision="8"
          >{h5}:/t{i}/points</DataItem>
      </Geometry>
      <Attribute Name="rho" AttributeType="Scalar" Center="Node">
        <DataItem Dimensions="{n}" Format="HDF" NumberType="Float" Precision="8"
          >{h5}:/t{i}/rho</DataItem>
      </Attribute>
      <Attribute Name="W" AttributeType="Scalar" Center="Node">
        <DataItem Dimensions="{n}" Format="HDF" NumberType="Float" Precision="8"
          >{h5}:/t{i}/W</DataItem>
      </Attribute>
    </Grid>
"""


class NodeSnapshotWriter:
    """Point-cloud snapshots of a ``LagrangianTransport`` (module docstring). Collective."""

    def __init__(self, path: str | os.PathLike, scheme):
        self.scheme, self.comm = scheme, scheme.comm
        self.path = Path(path)
        self.snapshots: list[tuple[float, np.ndarray, np.ndarray]] = []
        self._clouds: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = []
        self.min_written = np.inf
        self.written = "point data rho at the nodes (flow-map Jacobian) and their weights W"

    def write(self, t: float) -> None:
        s = self.scheme
        theta = s.stored_nodes()
        rho = s.node_density(theta)
        images, means = s.cell_images(theta)
        points = s.problem.domain.to_mesh(theta)
        points = np.pad(points, ((0, 0), (0, 3 - points.shape[1])))
        parts = self.comm.gather((points, rho, s.weights, images, means), root=0)
        failure = None
        if self.comm.rank == 0:
            points, rho, W, images, means = (np.concatenate([p[j] for p in parts])
                                             for j in range(5))
            self.min_written = min(self.min_written, float(rho.min(initial=np.inf)))
            self._clouds.append((t, points, rho, W))
            try:
                self._rewrite()
                self.snapshots.append((t, images, means))
            except DiskFullError as exc:  # the previous pair of files stays
                self._clouds.pop()
                failure = str(exc)
        failure = self.comm.bcast(failure, root=0)
        if failure is not None:
            raise DiskFullError(failure)

    def _rewrite(self) -> None:
        h5_path = self.path.with_suffix(".h5")
        with atomic_h5(h5_path) as h5:
            for i, (t, points, rho, W) in enumerate(self._clouds):
                h5.create_dataset(f"t{i}/points", data=points)
                h5.create_dataset(f"t{i}/rho", data=rho)
                h5.create_dataset(f"t{i}/W", data=W)
                h5[f"t{i}"].attrs["t"] = t
        grids = "".join(_GRID.format(i=i, t=float(t), n=len(W), h5=h5_path.name)
                        for i, (t, _, _, W) in enumerate(self._clouds))
        text = ('<?xml version="1.0"?>\n<Xdmf Version="3.0">\n  <Domain>\n'
                '  <Grid Name="nodes" GridType="Collection" CollectionType="Temporal">\n'
                f"{grids}  </Grid>\n  </Domain>\n</Xdmf>\n")
        write_bytes_atomic(self.path, text.encode())

    def close(self) -> None:
        """Nothing is pending: every snapshot rewrote complete files."""

    def abandon(self) -> None:
        """After a full disk: the previous complete files stay."""
