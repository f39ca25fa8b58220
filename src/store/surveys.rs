//! The callers' survey after a chat (view [`Surveys`]): counts only. An answer adds one to the count of
//! its helpline, UTC day, question and choice (`survey_counts`), and marks its contact as having answered
//! (`survey_answered`, so a second answer is refused) in the same transaction; no row ties a choice to a
//! contact or a time of day (docs/web-agent.md, "The survey").

use super::{on_pool, on_writer, BeginWrite, StoreResult};

/// The callers' survey counts.
#[derive(Clone, Copy)]
pub struct Surveys<'a>(pub(crate) &'a super::Store);

/// One count: so many answers `answer` to `question` on `helpline` on the UTC day starting at `day`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SurveyCount {
    pub helpline: String,
    pub day: i64,
    pub question: String,
    pub answer: String,
    pub n: i64,
}

impl Surveys<'_> {
    /// Counts a survey of contact `contact` of `helpline` on the UTC day starting at `day`: one for
    /// (`answered`, `yes`) and one per `(question, choice)` given. False (nothing counted) when the
    /// contact already answered.
    pub async fn count(self, contact: &str, helpline: &str, day: i64, answers: &[(&str, &str)]) -> StoreResult<bool> {
        let counted = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let fresh = sqlx::query("INSERT INTO survey_answered (contact_id) VALUES ($1) ON CONFLICT (contact_id) DO NOTHING")
                .bind(contact).execute(&mut *tx).await?.rows_affected() == 1;
            if !fresh {
                return Ok::<_, sqlx::Error>(false);
            }
            for (question, answer) in std::iter::once(&("answered", "yes")).chain(answers) {
                sqlx::query(
                    "INSERT INTO survey_counts (helpline, day, question, answer, n) VALUES ($1, $2, $3, $4, 1)
                     ON CONFLICT (helpline, day, question, answer) DO UPDATE SET n = survey_counts.n + 1")
                    .bind(helpline).bind(day).bind(*question).bind(*answer).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(true)
        }.await)?;
        Ok(counted)
    }

    /// Whether contact `contact` is marked as having answered (the mark goes with the contact's
    /// conversation at retention).
    pub async fn answered(self, contact: &str) -> StoreResult<bool> {
        let row: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as("SELECT contact_id FROM survey_answered WHERE contact_id = $1")
            .bind(contact).fetch_optional(pool).await)?;
        Ok(row.is_some())
    }

    /// The counts of the UTC days starting in `[from_day, to)`, of one helpline or all.
    pub async fn counts(self, helpline: Option<&str>, from_day: i64, to: i64) -> StoreResult<Vec<SurveyCount>> {
        let rows = on_pool!(self.0, pool => sqlx::query_as::<_, SurveyCount>(
            "SELECT helpline, day, question, answer, n FROM survey_counts
             WHERE day >= $1 AND day < $2 AND ($3 IS NULL OR helpline = $3) ORDER BY helpline, day, question, answer")
            .bind(from_day).bind(to).bind(helpline).fetch_all(pool).await)?;
        Ok(rows)
    }
}
