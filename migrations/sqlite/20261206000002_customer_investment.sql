-- The original CRM's customer fields: an investment profile (conservative, moderate,
-- aggressive), a risk tolerance from 1 to 10 and the investment experience.
ALTER TABLE customers ADD COLUMN investment_profile TEXT;
ALTER TABLE customers ADD COLUMN risk_tolerance INTEGER;
ALTER TABLE customers ADD COLUMN investment_experience TEXT;
