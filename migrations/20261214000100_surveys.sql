-- The caller's survey after a chat (issue 23): anonymous by construction.
--
-- No answer is stored as a row of its own: each answer only adds one to a count per helpline, UTC day,
-- question and choice, so nothing ties a choice to a contact, a time of day or the other answer
-- given with it. The choices are fixed words (no free text): nothing here is sealed.
CREATE TABLE survey_counts (
    helpline TEXT NOT NULL,
    day      BIGINT NOT NULL,
    question TEXT NOT NULL,
    answer   TEXT NOT NULL,
    n        BIGINT NOT NULL,
    PRIMARY KEY (helpline, day, question, answer)
);

-- Which contacts answered, only so that a second answer is refused; it holds no answer and no time.
CREATE TABLE survey_answered (
    contact_id TEXT PRIMARY KEY
);
