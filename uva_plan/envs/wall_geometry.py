"""Geometry of the two-room Wall world: layout constants, collisions, and exact routed distances.

World: a 64x64 square of units, x to the right, y downwards (as image rows). A vertical wall fills
x in [WALL_X0, WALL_X1] except for one door, a gap of DOOR_HEIGHT units centred at `door_y`. The agent is
a disc of radius AGENT_RADIUS, so in the space of agent CENTRES every wall piece grows by the radius into
a rounded rectangle; the door's corners become circles of radius AGENT_RADIUS. Everything below works
in that configuration space.

Plain-float Python on purpose: the env steps one agent at a time, where numpy's per-call overhead would
cost more than the arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from uva_plan.errors import UserInputError

WORLD_SIZE = 64.0
WALL_X0, WALL_X1 = 30.0, 34.0
WALL_CENTER_X = (WALL_X0 + WALL_X1) / 2
DOOR_HEIGHT = 14.0
DOOR_Y_MIN, DOOR_Y_MAX = 16.0, 48.0  # keeps the door at least 9 units from either edge
AGENT_RADIUS = 3.0
MAX_SPEED = 2.0  # per axis, units per step
SUCCESS_RADIUS = 4.0
ARENA_MIN, ARENA_MAX = AGENT_RADIUS, WORLD_SIZE - AGENT_RADIUS  # where the agent's centre may be
LEFT_ROOM_MAX_X = WALL_X0 - AGENT_RADIUS  # centres with x <= this are in the (convex) left room
RIGHT_ROOM_MIN_X = WALL_X1 + AGENT_RADIUS
_FAR = 1e3  # wall pieces are extended past the arena so only their door ends have corners that matter
_SUBSTEP = 1.0  # a move is split into pieces no longer than this: far below the 10-unit thick obstacle
_EPS = 1e-7


def wall_pieces(door_y: float) -> tuple[tuple[float, float, float, float], ...]:
    """The wall's two solid rectangles `(x0, y0, x1, y1)`: above and below the door."""
    top, bottom = door_y - DOOR_HEIGHT / 2, door_y + DOOR_HEIGHT / 2
    return ((WALL_X0, -_FAR, WALL_X1, top), (WALL_X0, bottom, WALL_X1, _FAR))


def door_corners(door_y: float) -> tuple[tuple[float, float], ...]:
    """The four corners of the door, the only corners a shortest path can bend around."""
    top, bottom = door_y - DOOR_HEIGHT / 2, door_y + DOOR_HEIGHT / 2
    return ((WALL_X0, top), (WALL_X1, top), (WALL_X0, bottom), (WALL_X1, bottom))


def _point_rect_distance(px: float, py: float, rect) -> float:
    x0, y0, x1, y1 = rect
    dx = max(x0 - px, 0.0, px - x1)
    dy = max(y0 - py, 0.0, py - y1)
    return math.hypot(dx, dy)


def clearance(x: float, y: float, door_y: float) -> float:
    """Distance from a point to the nearest wall piece (the agent's centre needs >= AGENT_RADIUS)."""
    return min(_point_rect_distance(x, y, r) for r in wall_pieces(door_y))


def is_free(x: float, y: float, door_y: float, tol: float = 1e-6) -> bool:
    """Whether a disc centred at (x, y) lies inside the arena and touches no wall piece."""
    inside = ARENA_MIN - tol <= x <= ARENA_MAX + tol and ARENA_MIN - tol <= y <= ARENA_MAX + tol
    return inside and clearance(x, y, door_y) >= AGENT_RADIUS - tol


def _push_out(x: float, y: float, rect) -> tuple[float, float]:
    """Move a centre that is closer than the radius to `rect` onto the nearest free point."""
    x0, y0, x1, y1 = rect
    qx, qy = min(max(x, x0), x1), min(max(y, y0), y1)
    dx, dy = x - qx, y - qy
    d = math.hypot(dx, dy)
    if d >= AGENT_RADIUS:
        return x, y
    if d > 1e-12:
        scale = AGENT_RADIUS / d
        return qx + dx * scale, qy + dy * scale
    # Centre inside the solid piece (only reachable by a bad set_state): leave by the nearest face.
    exits = [(x - x0 + AGENT_RADIUS, (x0 - AGENT_RADIUS, y)), (x1 - x + AGENT_RADIUS, (x1 + AGENT_RADIUS, y))]
    exits.append((y - y0 + AGENT_RADIUS, (x, y0 - AGENT_RADIUS)))
    exits.append((y1 - y + AGENT_RADIUS, (x, y1 + AGENT_RADIUS)))
    return min(exits)[1]


def move(x: float, y: float, vx: float, vy: float, door_y: float) -> tuple[float, float]:
    """Move the agent by (vx, vy), sliding along walls and arena edges.

    The move is cut into sub-steps of at most `_SUBSTEP` units and the centre is pushed out of any wall
    piece after each, so a fast move can never tunnel through the 10-unit thick obstacle and a move into
    a wall keeps its tangential part (sliding).
    """
    n = max(1, math.ceil(math.hypot(vx, vy) / _SUBSTEP))
    sx, sy = vx / n, vy / n
    pieces = wall_pieces(door_y)
    for _ in range(n):
        x = min(max(x + sx, ARENA_MIN), ARENA_MAX)
        y = min(max(y + sy, ARENA_MIN), ARENA_MAX)
        for rect in pieces:
            x, y = _push_out(x, y, rect)
    return x, y


def _segment_hits_rect(ax, ay, bx, by, rect) -> bool:
    """Liang-Barsky clipping: does the segment a-b cross the rectangle?"""
    x0, y0, x1, y1 = rect
    t0, t1 = 0.0, 1.0
    dx, dy = bx - ax, by - ay
    for p, q in ((-dx, ax - x0), (dx, x1 - ax), (-dy, ay - y0), (dy, y1 - ay)):
        if abs(p) < 1e-15:
            if q < 0:
                return False
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return True


def _point_segment_distance(px, py, ax, ay, bx, by) -> float:
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else min(max(((px - ax) * dx + (py - ay) * dy) / length2, 0.0), 1.0)
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def segment_clearance(ax: float, ay: float, bx: float, by: float, door_y: float) -> float:
    """Smallest distance from the segment a-b to the wall (0 if it crosses the wall)."""
    best = math.inf
    for rect in wall_pieces(door_y):
        if _segment_hits_rect(ax, ay, bx, by, rect):
            return 0.0
        x0, y0, x1, y1 = rect
        # For disjoint convex sets in the plane the gap is attained at a vertex of one of them.
        best = min(best, _point_rect_distance(ax, ay, rect), _point_rect_distance(bx, by, rect))
        for cx, cy in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
            best = min(best, _point_segment_distance(cx, cy, ax, ay, bx, by))
    return best


def segment_is_free(ax, ay, bx, by, door_y: float, margin: float = 0.0) -> bool:
    """Whether the agent can move straight from a to b (keeping `margin` extra clearance)."""
    reach = AGENT_RADIUS + margin - 1e-6
    if max(ax, bx) <= WALL_X0 - reach or min(ax, bx) >= WALL_X1 + reach:
        return True  # both ends inside one room, which is convex: the common case, answered at once
    return segment_clearance(ax, ay, bx, by, door_y) >= reach


# ---------------------------------------------------------------------------------------------------------
# Exact shortest path for the agent's centre: straight segments tangent to the door-corner circles
# (radius AGENT_RADIUS around each door corner) joined by arcs on those circles.


@dataclass(frozen=True)
class RoutedPath:
    """A shortest path: its length, and the points where it bends (tangent points, in order)."""

    length: float
    waypoints: tuple[tuple[float, float], ...]


def _tangent_from_point(px, py, cx, cy, orient):
    """Tangent point on circle c for a path leaving p and then turning around c with `orient` (+1: the
    angle increases, -1: it decreases). None when p is inside the circle."""
    r = AGENT_RADIUS
    dx, dy = px - cx, py - cy
    d = math.hypot(dx, dy)
    if d < r - 1e-9:
        return None
    phi = math.atan2(dy, dx)
    alpha = math.acos(min(1.0, r / d))
    for s in (1.0, -1.0):
        th = phi + s * alpha
        tx, ty = cx + r * math.cos(th), cy + r * math.sin(th)
        # travel direction on the circle at angle th is orient * (-sin th, cos th)
        if (tx - px) * (-math.sin(th)) * orient + (ty - py) * math.cos(th) * orient >= -1e-9:
            return th, (tx, ty)
    return None


def _tangent_to_point(cx, cy, orient, px, py):
    """Tangent point where a path turning around c with `orient` leaves straight towards p."""
    res = _tangent_from_point(px, py, cx, cy, -orient)
    return res


def _tangent_between(c1, o1, c2, o2):
    """Leave circle c1 (turning o1) and arrive on circle c2 (turning o2) along a common tangent.

    Equal radii: the outer tangent (o1 == o2) is parallel to the centre line, the inner one (o1 != o2)
    passes through the midpoint of the centres. None when no such tangent exists."""
    r = AGENT_RADIUS
    dx, dy = c2[0] - c1[0], c2[1] - c1[1]
    d = math.hypot(dx, dy)
    if d < 1e-12:
        return None
    ux, uy = dx / d, dy / d
    if o1 == o2:
        nx, ny = o1 * uy, -o1 * ux
        th1 = math.atan2(ny, nx)
        return th1, th1, (c1[0] + r * nx, c1[1] + r * ny), (c2[0] + r * nx, c2[1] + r * ny)
    if d < 2 * r:
        return None
    phi = math.atan2(dy, dx)
    gamma = math.acos(2 * r / d)
    for s in (1.0, -1.0):
        th1 = phi + s * gamma
        t1 = (c1[0] + r * math.cos(th1), c1[1] + r * math.sin(th1))
        t2 = (2 * (c1[0] + c2[0]) / 2 - t1[0], 2 * (c1[1] + c2[1]) / 2 - t1[1])
        if (t2[0] - t1[0]) * (-math.sin(th1)) * o1 + (t2[1] - t1[1]) * math.cos(th1) * o1 > 0:
            th2 = math.atan2(t2[1] - c2[1], t2[0] - c2[0])
            return th1, th2, t1, t2
    return None


def _arc(theta_in: float, theta_out: float, orient: int) -> float:
    """Angle swept turning from theta_in to theta_out in direction `orient`, in [0, 2 pi)."""
    return ((theta_out - theta_in) * orient) % (2 * math.pi)


def _arc_is_free(c, theta_in, sweep, orient, door_y) -> bool:
    if sweep > math.pi / 2 + 1e-6:  # no taut path bends more than the corner's quarter turn
        return False
    for k in range(1, 8):
        th = theta_in + orient * sweep * k / 8
        x, y = c[0] + AGENT_RADIUS * math.cos(th), c[1] + AGENT_RADIUS * math.sin(th)
        if clearance(x, y, door_y) < AGENT_RADIUS - 1e-6:
            return False
    return True


def _candidate(a, b, circles, door_y):
    """Length and bend points of the path a -> circles (each (centre, orient)) -> b, or None if the path
    is geometrically impossible; collision checks are done by the caller in order of length."""
    legs = []  # straight segments
    arcs = []  # (centre, theta_in, sweep, orient)
    (c0, o0) = circles[0]
    first = _tangent_from_point(a[0], a[1], c0[0], c0[1], o0)
    if first is None:
        return None
    theta_in, t_in = first
    legs.append((a, t_in))
    points = [a, t_in]
    for (c1, o1), (c2, o2) in zip(circles, circles[1:]):
        tan = _tangent_between(c1, o1, c2, o2)
        if tan is None:
            return None
        th_out, th_next, t_out, t_next = tan
        arcs.append((c1, theta_in, _arc(theta_in, th_out, o1), o1))
        legs.append((t_out, t_next))
        points += [t_out, t_next]
        theta_in = th_next
    c_last, o_last = circles[-1]
    last = _tangent_to_point(c_last[0], c_last[1], o_last, b[0], b[1])
    if last is None:
        return None
    th_out, t_out = last
    arcs.append((c_last, theta_in, _arc(theta_in, th_out, o_last), o_last))
    legs.append((t_out, b))
    points += [t_out, b]
    length = sum(math.hypot(q[0] - p[0], q[1] - p[1]) for p, q in legs)
    length += sum(AGENT_RADIUS * sweep for _, _, sweep, _ in arcs)
    return length, points, (legs, arcs)


def routed_path(ax: float, ay: float, bx: float, by: float, door_y: float) -> RoutedPath:
    """Exact shortest path for the agent's centre from a to b, around the wall through the door.

    The free space is the arena minus two convex obstacles (the wall pieces grown by the agent radius,
    whose door ends are rounded by circles of the agent's radius). A shortest path is a taut string: a
    straight line, or tangent segments wrapping at most two door-corner circles (one per side of the wall,
    or both corners of one piece when it runs along the door's edge). All such candidates are built
    analytically; the shortest one that keeps clear of the wall is the answer.
    """
    a, b = (ax, ay), (bx, by)
    if segment_is_free(ax, ay, bx, by, door_y):
        return RoutedPath(math.hypot(bx - ax, by - ay), (a, b))
    found = _shortest_valid(a, b, _likely_sequences(ax, bx, door_y), door_y)
    if found is None:  # not expected; the exhaustive search keeps the answer exact regardless
        found = _shortest_valid(a, b, _all_sequences(door_y), door_y)
    if found is None:
        raise UserInputError(f"no path from {a} to {b} with the door at y={door_y}: an endpoint is inside the wall")
    return found


def _likely_sequences(ax: float, bx: float, door_y: float) -> list:
    """The 8 corner sequences a taut path can take when it moves monotonically in x (always, here): at
    most one corner on each face of the wall, visited in x order, each wrapped on its door side."""
    tl, tr, bl, br = door_corners(door_y)
    d = 1 if bx >= ax else -1
    top, bottom = -d, d  # turning sense round the top piece's corners and the bottom piece's corners
    near = [(tl, top), (bl, bottom)] if d > 0 else [(tr, top), (br, bottom)]
    far = [(tr, top), (br, bottom)] if d > 0 else [(tl, top), (bl, bottom)]
    return [[c] for c in near + far] + [[c1, c2] for c1 in near for c2 in far]


def _all_sequences(door_y: float) -> list:
    corners = door_corners(door_y)
    seqs = [[(c, o)] for c in corners for o in (1, -1)]
    for i, c1 in enumerate(corners):
        for j, c2 in enumerate(corners):
            if i != j:
                seqs += [[(c1, o1), (c2, o2)] for o1 in (1, -1) for o2 in (1, -1)]
    return seqs


def _shortest_valid(a, b, sequences, door_y) -> RoutedPath | None:
    candidates = (_candidate(a, b, seq, door_y) for seq in sequences)
    for cand in sorted((c for c in candidates if c is not None), key=lambda c: c[0]):
        length, points, (legs, arcs) = cand
        if all(segment_is_free(p[0], p[1], q[0], q[1], door_y) for p, q in legs) and all(
            _arc_is_free(c, th, sweep, o, door_y) for c, th, sweep, o in arcs
        ):
            return RoutedPath(length, tuple(points))
    return None


def routed_distance(ax: float, ay: float, bx: float, by: float, door_y: float) -> float:
    """Length of the shortest collision-free path of the agent's centre (see `routed_path`)."""
    return routed_path(ax, ay, bx, by, door_y).length
