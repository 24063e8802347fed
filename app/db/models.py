"""ORM models of the four contract tables.

Table and column names are fixed by the original system's manual (quoted CamelCase on
PostgreSQL), because other applications read and write them. Everything the worker adds
has a server-side default, so another application only ever has to insert a MediaFile
row and a MediaItems row with IsFacesExtracted = false.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    false,
    func,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.db.types import UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
}

# MediaItems.Status values. IsFacesExtracted stays the contract's "done" flag.
STATUS_PENDING = "pending"
STATUS_PROCESSING = "processing"
STATUS_DONE = "done"
STATUS_FAILED = "failed"

# Faces.AssignedBy values. A face with a PersonId and no AssignedBy was set by
# another application, which the worker treats exactly like "user".
ASSIGNED_MATCHED = "matched"
ASSIGNED_CLUSTERED = "clustered"
ASSIGNED_USER = "user"
# A user's (or another application's) face with a person, refreshed from a new detection
# because its file's content changed: still the user's everywhere (re-detection keeps it,
# --recluster leaves it), until the recognition run compares its new vector with the
# person's other faces: 'user' again, or no person (app/services/recheck.py).
ASSIGNED_RECHECK = "recheck"
# A user decided these faces (a face waiting for its re-check is still the user's).
USER_DECIDED = (ASSIGNED_USER, ASSIGNED_RECHECK)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _created() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), nullable=False, server_default=func.now())


def _modified() -> Mapped[datetime]:
    # onupdate covers every ORM and Core UPDATE the worker issues.
    return mapped_column(
        UTCDateTime(), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class MediaFile(Base):
    __tablename__ = "MediaFile"

    Id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    FilePath: Mapped[str] = mapped_column(String(500), nullable=False, index=True)
    FileName: Mapped[str] = mapped_column(String(255), nullable=False)
    Extensions: Mapped[str | None] = mapped_column(String(10))
    CreatedAt: Mapped[datetime] = _created()
    ModifiedAt: Mapped[datetime] = _modified()


class MediaItems(Base):
    __tablename__ = "MediaItems"
    __table_args__ = (
        # The worker's polling query: pending items in id order.
        Index("ix_MediaItems_pending", "IsFacesExtracted", "Id"),
    )

    Id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    MediaFileId: Mapped[int] = mapped_column(
        ForeignKey("MediaFile.Id", ondelete="CASCADE"), nullable=False, index=True
    )
    IsFacesExtracted: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=false(), default=False
    )
    FacesExtractedOn: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What the worker needs to process safely with many workers and bad input.
    Status: Mapped[str] = mapped_column(
        String(16), nullable=False, server_default=text(f"'{STATUS_PENDING}'")
    )
    Attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    LastError: Mapped[str | None] = mapped_column(Text)
    LockedBy: Mapped[str | None] = mapped_column(String(128))
    LockedUntil: Mapped[datetime | None] = mapped_column(UTCDateTime())
    FaceCount: Mapped[int | None] = mapped_column(Integer)
    # The file as the last detection read it (app/pipeline/file_stamp.py), so that a photo
    # replaced under its name is noticed (app/services/file_changes.py): size, modification
    # time and a hash of its first and last 64 KiB. Null until detected by this worker
    # (another application inserts rows without them).
    FileSize: Mapped[int | None] = mapped_column(BigInteger)
    FileMtimeNs: Mapped[int | None] = mapped_column(BigInteger)
    ContentHash: Mapped[str | None] = mapped_column(String(64))
    # When the change check first found the file gone (null: there, or not checked yet);
    # recorded by the check so that --status never has to stat the library.
    MissingSince: Mapped[datetime | None] = mapped_column(UTCDateTime())
    CreatedAt: Mapped[datetime] = _created()
    ModifiedAt: Mapped[datetime] = _modified()


class Persons(Base):
    __tablename__ = "Persons"

    Id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    Name: Mapped[str | None] = mapped_column(String(255))
    # True for persons the worker made by clustering. Rows another application
    # inserts default to False: the worker never deletes or renames those.
    IsAutomatic: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    # A stranger the user does not want listed: kept, and still collects its new faces, so
    # the same stranger never comes back as a new person.
    IsHidden: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    # The face apps show for this person: the best-scored face (Faces.Quality), kept up to
    # date by the worker until a user picks one (CoverByUser); a face no longer of this
    # person is replaced whoever picked it. No foreign key: Faces already points here.
    CoverFaceId: Mapped[int | None] = mapped_column(Integer)
    CoverByUser: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    CreatedAt: Mapped[datetime] = _created()
    ModifiedAt: Mapped[datetime] = _modified()


class Faces(Base):
    __tablename__ = "Faces"
    __table_args__ = (
        Index(
            "ix_Faces_Embedding_pending", "IsUsable", "MediaFileId",
            postgresql_where=text('"Embedding" IS NULL'), sqlite_where=text('"Embedding" IS NULL'),
        ),
        Index(
            "ix_Faces_Embedding2_pending", "IsUsable", "MediaFileId",
            postgresql_where=text('"Embedding2" IS NULL'), sqlite_where=text('"Embedding2" IS NULL'),
        ),
        Index(
            "ix_Faces_Quality_missing", "Id",
            postgresql_where=text('"Quality" IS NULL'), sqlite_where=text('"Quality" IS NULL'),
        ),
    )

    Id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    MediaFileId: Mapped[int] = mapped_column(
        ForeignKey("MediaFile.Id", ondelete="CASCADE"), nullable=False, index=True
    )
    PersonId: Mapped[int | None] = mapped_column(
        ForeignKey("Persons.Id", ondelete="SET NULL"), index=True
    )
    # JSON text {"x":..,"y":..,"w":..,"h":..} in original image pixels.
    BoundingBox: Mapped[str | None] = mapped_column(String(255))
    # float32 bytes, L2-normalised; compared only with embeddings of the same model.
    Embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    EmbeddingModel: Mapped[str | None] = mapped_column(String(64))
    # A second vector of another model (SFace, 128-d), float32 L2-normalised, when the
    # EMBEDDER setting makes that model decide persons; Embedding stays FaceNet's.
    Embedding2: Mapped[bytes | None] = mapped_column(LargeBinary)
    Embedding2Model: Mapped[str | None] = mapped_column(String(64))
    # Why the last try to embed this face failed. With EmbedAttempts >= MAX_ATTEMPTS it
    # is given up (failed for good); below that it is tried again after a delay.
    EmbedError: Mapped[str | None] = mapped_column(Text)
    # The embedding stage's queue, as MediaItems' for detection: attempts and lease.
    EmbedAttempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    EmbedLockedBy: Mapped[str | None] = mapped_column(String(128))
    EmbedLockedUntil: Mapped[datetime | None] = mapped_column(UTCDateTime())
    Confidence: Mapped[float | None] = mapped_column(Float)
    # JSON text [[x,y] x5]: right eye, left eye, nose, right mouth, left mouth corner.
    Landmarks: Mapped[str | None] = mapped_column(Text)
    ThumbnailPath: Mapped[str | None] = mapped_column(String(500))
    # Variance of the Laplacian of the face crop: low means blurred.
    Blur: Mapped[float | None] = mapped_column(Float)
    # "A good photo of this person", 0..1, from sharpness, size, exposure, pose and the
    # detector's score (app/pipeline/face_score.py; README, "Face quality score").
    Quality: Mapped[float | None] = mapped_column(Float)
    # False when the face failed a quality gate: kept for display, never clustered.
    IsUsable: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=true())
    AssignedBy: Mapped[str | None] = mapped_column(String(16))
    AssignedAt: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the assignment step last looked at this face and left it without a person. A
    # face left over is looked at again only when something near it changes (a new face
    # close to it, a user decision), so a run with nothing new changes nothing.
    ConsideredAt: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Faces found in a video: the frame (0-based, in presentation order: the frame's time x
    # the frame rate) and its time from the start in milliseconds; TrackNumber numbers the
    # tracks of one video (the same face in consecutive sampled frames). All null for a
    # photo's faces.
    FrameNumber: Mapped[int | None] = mapped_column(Integer)
    FrameTimeMs: Mapped[int | None] = mapped_column(BigInteger)
    TrackNumber: Mapped[int | None] = mapped_column(Integer)
    CreatedAt: Mapped[datetime] = _created()
    ModifiedAt: Mapped[datetime] = _modified()


# Operations.Who and AssignmentLog.Who: a person's own decision, or the worker's run.
WHO_USER = "user"
WHO_WORKER = "worker"
WHO_RECLUSTER = "recluster"  # AssignmentLog: an automatic assignment cleared by --recluster
WHO_RECHECK = "recheck"  # AssignmentLog: a refreshed user's face that left its person on re-check


class MediaMeta(Base):
    """What the photo says about itself, read from its EXIF at detection (no second
    decode). Every field may be null: no EXIF, or a broken field (Problems says which)."""

    __tablename__ = "MediaMeta"

    MediaFileId: Mapped[int] = mapped_column(ForeignKey("MediaFile.Id", ondelete="CASCADE"), primary_key=True)
    Width: Mapped[int | None] = mapped_column(Integer)  # after EXIF orientation
    Height: Mapped[int | None] = mapped_column(Integer)
    # ISO 8601 as the camera wrote it: with its UTC offset when the photo gives one
    # (OffsetTimeOriginal), else the camera clock's local time without an offset.
    TakenAt: Mapped[str | None] = mapped_column(String(32))
    CameraMake: Mapped[str | None] = mapped_column(String(100))
    CameraModel: Mapped[str | None] = mapped_column(String(100))
    Latitude: Mapped[float | None] = mapped_column(Float)
    Longitude: Mapped[float | None] = mapped_column(Float)
    Altitude: Mapped[float | None] = mapped_column(Float)  # metres above sea level
    Orientation: Mapped[int | None] = mapped_column(Integer)  # EXIF 1..8
    DeviceId: Mapped[str | None] = mapped_column(String(200))
    Problems: Mapped[str | None] = mapped_column(Text)  # EXIF fields that could not be read
    # "video" for a video (null: a photo), with its length, codec and frame rate; TakenAt
    # holds the container's creation time, Width and Height the frame size.
    MediaType: Mapped[str | None] = mapped_column(String(8))
    DurationMs: Mapped[int | None] = mapped_column(BigInteger)
    Codec: Mapped[str | None] = mapped_column(String(32))
    FrameRate: Mapped[float | None] = mapped_column(Float)
    CreatedAt: Mapped[datetime] = _created()


class Operations(Base):
    """One user operation (rename, merge, move, ...) or one worker run that changed
    assignments. Append-only, except UndoneBy, set when an undo reverts it."""

    __tablename__ = "Operations"

    Id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    Kind: Mapped[str] = mapped_column(String(32), nullable=False)
    Who: Mapped[str] = mapped_column(String(16), nullable=False)
    Summary: Mapped[str] = mapped_column(Text, nullable=False)
    # JSON: the persons' rows before and after, rejections added and removed (what an
    # undo needs besides the face rows of AssignmentLog).
    Details: Mapped[str | None] = mapped_column(Text)
    UndoOf: Mapped[int | None] = mapped_column(Integer)
    UndoneBy: Mapped[int | None] = mapped_column(Integer)
    CreatedAt: Mapped[datetime] = _created()


class AssignmentLog(Base):
    """Every change of a face's person, by anyone: replaying it in Id order gives every
    face's PersonId. No foreign keys: the log outlives faces and persons."""

    __tablename__ = "AssignmentLog"

    Id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    OperationId: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    FaceId: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    OldPersonId: Mapped[int | None] = mapped_column(Integer)
    NewPersonId: Mapped[int | None] = mapped_column(Integer)
    Who: Mapped[str] = mapped_column(String(16), nullable=False)  # user, matched, clustered, recluster, recheck
    OldAssignedBy: Mapped[str | None] = mapped_column(String(16))
    NewAssignedBy: Mapped[str | None] = mapped_column(String(16))
    OldAssignedAt: Mapped[datetime | None] = mapped_column(UTCDateTime())
    CreatedAt: Mapped[datetime] = _created()


class FaceRejections(Base):
    """"Not this person": the face is never given this person again, by matching,
    clustering or --recluster. The person is a plain number, so the rejection stays when
    the person is deleted (and an undo can bring the person back)."""

    __tablename__ = "FaceRejections"

    FaceId: Mapped[int] = mapped_column(ForeignKey("Faces.Id", ondelete="CASCADE"), primary_key=True)
    PersonId: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)
    OperationId: Mapped[int | None] = mapped_column(Integer)
    CreatedAt: Mapped[datetime] = _created()


# PublishEvents.Status values: queued (waiting, and still collecting changes of its media
# file), pending (its payload and idempotency key are fixed; being sent or waiting to be
# retried), sent (a 2xx came back), failed (gave up: PUBLISH_MAX_ATTEMPTS, or refused).
EVENT_QUEUED = "queued"
EVENT_PENDING = "pending"
EVENT_SENT = "sent"
EVENT_FAILED = "failed"


class PublishEvents(Base):
    """The outbox: one event per media file whose faces or persons changed, written in the
    transaction that changed them and posted to PUBLISH_URL by --publish. No foreign key:
    an event outlives its media file (the payload then says the file is gone)."""

    __tablename__ = "PublishEvents"
    __table_args__ = (
        # At most one queued event per media file: later changes join it until it is sent.
        Index("ix_PublishEvents_queued", "MediaFileId", unique=True,
              postgresql_where=text("\"Status\" = 'queued'"), sqlite_where=text("\"Status\" = 'queued'")),
        Index("ix_PublishEvents_Status_Id", "Status", "Id"),
    )

    Id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    MediaFileId: Mapped[int] = mapped_column(Integer, nullable=False)
    Status: Mapped[str] = mapped_column(String(16), nullable=False, server_default=text(f"'{EVENT_QUEUED}'"))
    IdempotencyKey: Mapped[str | None] = mapped_column(String(64), unique=True)
    Payload: Mapped[str | None] = mapped_column(Text)  # the JSON body, fixed before the first try
    Attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    NextAttemptAt: Mapped[datetime | None] = mapped_column(UTCDateTime())
    LastError: Mapped[str | None] = mapped_column(Text)
    LockedBy: Mapped[str | None] = mapped_column(String(128))
    LockedUntil: Mapped[datetime | None] = mapped_column(UTCDateTime())
    SentAt: Mapped[datetime | None] = mapped_column(UTCDateTime())
    CreatedAt: Mapped[datetime] = _created()
