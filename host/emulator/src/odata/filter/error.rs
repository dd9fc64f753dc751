//! What can go wrong parsing, checking and evaluating a `$filter`. The
//! messages are the ones the services put in their error bodies.

/// Why a `$filter` does not parse, is rejected, or cannot be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// The expression is longer than the longest URL accepted.
    #[error("The $filter expression is too long.")]
    TooLong,
    /// Groups, calls, lists, `not` or lambdas are nested too deeply.
    #[error("The $filter expression is nested too deeply.")]
    TooDeep,
    /// The text is not an expression; `position` is a byte offset in `input`.
    #[error("Syntax error at position {position} in '{input}'.")]
    Syntax {
        /// Byte offset of the first character that does not fit.
        position: usize,
        /// The text parsed (the `$filter`, or a parameter alias's value).
        input: String,
    },
    /// `path/all()` without a lambda expression.
    #[error(
        "The 'all' operator on '{path}' needs a lambda expression, as in all(x:x/property eq 1)."
    )]
    AllWithoutLambda {
        /// The collection path.
        path: String,
    },
    /// A parameter alias used inside the value of another alias.
    #[error("The parameter alias '{alias}' cannot be used in the value of another alias.")]
    NestedAlias {
        /// The alias, with its `@`.
        alias: String,
    },
    /// A parameter alias's value is too long.
    #[error("The value of parameter alias '{alias}' is too long.")]
    AliasTooLong {
        /// The alias, with its `@`.
        alias: String,
    },
    /// The aliases, substituted, make too large an expression.
    #[error("The parameter aliases expand to too large an expression.")]
    AliasExpansionTooLarge,
    /// A parameter alias's value does not parse.
    #[error("Invalid value for parameter alias '{alias}': {source}")]
    InvalidAlias {
        /// The alias, with its `@`.
        alias: String,
        /// Why its value does not parse.
        source: Box<FilterError>,
    },
    /// A lambda variable that is not an identifier.
    #[error("The lambda variable '{var}' on '{path}' is not a valid identifier.")]
    InvalidLambdaVariable {
        /// The variable as written.
        var: String,
        /// The collection path.
        path: String,
    },
    /// A property path with a segment that is not an identifier.
    #[error("'{path}' is not a valid property path.")]
    InvalidPath {
        /// The path as written.
        path: String,
    },
    /// A function called with the wrong number of (positional) arguments.
    #[error(
        "The function '{function}' takes {count} {}.",
        if *count == 1 { "argument" } else { "arguments" }
    )]
    ArgumentCount {
        /// The function as written.
        function: String,
        /// How many arguments it takes.
        count: usize,
    },
    /// An `endswith` value ending in the wildcard `%`.
    #[error(
        "The value '{value}' of {function} ends with a trailing wildcard ('%'), which Dataverse does not support."
    )]
    TrailingWildcard {
        /// The function as written.
        function: String,
        /// The string value.
        value: String,
    },
    /// A `startswith`/`contains` value starting with the wildcard `%`.
    #[error(
        "The value '{value}' of {function} starts with a leading wildcard ('%'), which Dataverse does not support."
    )]
    LeadingWildcard {
        /// The function as written.
        function: String,
        /// The string value.
        value: String,
    },
    /// A function the service does not know.
    #[error("The function '{function}' is not supported.")]
    UnsupportedFunction {
        /// The function as written.
        function: String,
    },
    /// A Dataverse query function that exists but that the emulator lacks.
    #[error("The Dataverse query function '{function}' is not supported by this emulator.")]
    UnimplementedQueryFunction {
        /// The function as written.
        function: String,
    },
    /// A Dataverse query function given a positional argument.
    #[error("The function '{function}' takes named parameters: {expected}.")]
    NamedParametersRequired {
        /// The function as written.
        function: String,
        /// Its parameters, comma-separated.
        expected: String,
    },
    /// A Dataverse query function given a parameter it does not have.
    #[error("The function '{function}' has no parameter '{parameter}'; it takes {expected}.")]
    UnknownParameter {
        /// The function as written.
        function: String,
        /// The parameter given.
        parameter: String,
        /// Its parameters, comma-separated.
        expected: String,
    },
    /// A parameter given twice.
    #[error("The parameter '{parameter}' is given more than once to '{function}'.")]
    RepeatedParameter {
        /// The function as written.
        function: String,
        /// The parameter given twice.
        parameter: String,
    },
    /// A parameter missing.
    #[error("The function '{function}' needs the parameter '{parameter}'.")]
    MissingParameter {
        /// The function as written.
        function: String,
        /// The parameter missing.
        parameter: String,
    },
    /// `PropertyName` is not a string or property.
    #[error("The PropertyName of '{function}' must be a string such as 'name'.")]
    PropertyNameNotString {
        /// The function as written.
        function: String,
    },
    /// `PropertyName` is not an identifier.
    #[error("The PropertyName '{property}' of '{function}' is not a valid property name.")]
    InvalidPropertyName {
        /// The function as written.
        function: String,
        /// The name given.
        property: String,
    },
    /// `PropertyValues` is not a list.
    #[error("The PropertyValues of '{function}' must be a list such as [\"a\",\"b\"].")]
    PropertyValuesNotList {
        /// The function as written.
        function: String,
    },
    /// `PropertyValues` holds null or a list.
    #[error("The PropertyValues of '{function}' hold an invalid value ({value}).")]
    InvalidPropertyValue {
        /// The function as written.
        function: String,
        /// The value, in the AST's debug form.
        value: String,
    },
    /// `PropertyValues` of `In`/`NotIn` is empty.
    #[error("The PropertyValues of '{function}' must not be empty.")]
    EmptyPropertyValues {
        /// The function as written.
        function: String,
    },
    /// `PropertyValues` of `Between`/`NotBetween` does not hold two values.
    #[error("The PropertyValues of '{function}' must hold exactly two values.")]
    NotTwoPropertyValues {
        /// The function as written.
        function: String,
    },
    /// The `X` of `LastXDays` and friends is not a non-negative integer.
    #[error("The PropertyValue of '{function}' must be a non-negative whole number.")]
    InvalidCount {
        /// The function as written.
        function: String,
    },
    /// The date of `On`/`OnOrAfter`/`OnOrBefore` is not a date.
    #[error("The PropertyValue of '{function}' must be a date such as '2024-01-31'.")]
    InvalidDate {
        /// The function as written.
        function: String,
    },
    /// Evaluation: a date function over a property that holds no date.
    #[error("The property '{property}' does not hold a date (got {value}).")]
    NotADate {
        /// The property.
        property: String,
        /// What it holds: JSON, or a quoted string.
        value: String,
    },
    /// Evaluation: the expression (or a lambda body) is not boolean.
    #[error("The expression does not yield a boolean (got {value}).")]
    NotBoolean {
        /// What it yields, as JSON.
        value: String,
    },
    /// Evaluation: a lambda over a property that is not a collection.
    #[error("The property '{path}' is not a collection (got {value}).")]
    NotACollection {
        /// The collection path.
        path: String,
        /// What it holds, as JSON.
        value: String,
    },
    /// Evaluation: `EqualUserId`/`NotEqualUserId` without a calling user.
    #[error("The function '{function}' needs the calling user's id.")]
    NoUserId {
        /// The function as written.
        function: String,
    },
}
